"""An MCP server for the tests, on the official SDK: ``python inventory.py`` (stdio) or ``... http PORT``."""

from __future__ import annotations

import os
import sys

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel

server = MCPServer("inventory")


class Item(BaseModel):
    sku: str
    count: int


@server.tool()
def stock(sku: str) -> int:
    """How many of a product are in stock."""
    return len(sku) * 10


@server.tool()
def reserve(sku: str, count: int = 1) -> Item:
    """Reserve some of a product."""
    if count > 100:
        raise ToolError(f"cannot reserve {count} of {sku}: only 100 at a time")
    return Item(sku=sku, count=count)


if "slow" in sys.argv:  # a tool that takes its time, for timeouts on a connection other calls share

    @server.tool()
    async def recount(sku: str, seconds: float = 0.0) -> int:
        """Count a product again, which takes a while."""
        await anyio.sleep(seconds)
        return len(sku)

    @server.tool()
    def crash(sku: str) -> int:
        """Stop the server in the middle of a call."""
        os._exit(3)


if "dotted" in sys.argv:  # a tool name MCP allows and OpenAI-compatible servers refuse

    @server.tool(name="stock.count")
    def stock_count(sku: str) -> int:
        """Count a product."""
        return 1


if __name__ == "__main__":
    log = os.environ.get("INVENTORY_LOG")
    if log:  # one line per server started, with its process id: how many connections a run opened
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"{os.getpid()}\n")
    if sys.argv[1:2] == ["http"]:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
