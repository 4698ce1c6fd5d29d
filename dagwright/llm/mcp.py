"""Tools from MCP servers, through the official ``mcp`` SDK (the ``dagwright[mcp]`` extra).

:class:`MCPTools` names a server: a command started over stdio (``MCPTools("python", "server.py")``)
or a streamable-HTTP URL (``MCPTools(url="http://127.0.0.1:8000/mcp")``). Given in an agent's
``tools=[...]``, its tools are offered to the model beside the Python tools and called on one
connection, whose tools are listed once when it opens. ``tools=["read_file"]`` keeps only the named
tools and makes their absence an error.

A connection belongs to a run (:mod:`dagwright.execution.resources`): a flow run connects to every
server its agents name when it starts, lists their tools once, shares each connection with every
agent of the run that names the same server (same command, arguments, environment and directory, or
same URL and headers), and closes it when the run ends. An agent called by itself is its own run. The
connection is entered and left by a task of its own: an SDK client lives in anyio cancel scopes, which
the task that entered them must leave, and the agents calling it run in other tasks.

In the IR the server is an entry of ``mcp_servers`` (name, transport, the command or the URL
without credentials, the tool names it must have); its environment and HTTP headers stay in the
process. Once the server is listed (the start of a run, ``connect()``, ``dagwright check --connect``)
the IR lists its tools' schemas too, like Python tools, and ``compile()`` checks their names.
``dagwright check --connect`` uses :func:`connect_diagnostics` (DW305 for a server that does not
answer, DW306 for a named tool it lacks, DW303 / DW304 for its tools' names).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from dagwright.compiler.diagnostics import Diagnostic
from dagwright.compiler.ir import Graph
from dagwright.compiler.redact import REDACTED, looks_like_credential, strip_url
from dagwright.compiler.tools import TOOL_NAME, TOOL_NAME_RULE, ToolSpec, check_connected
from dagwright.execution._sync import run_sync
from dagwright.execution.resources import (
    Opened,
    RunResources,
    current_resources,
    reset_resources,
    using_resources,
)
from dagwright.llm.tools import CallableTool, ToolError

__all__ = ["MCPTools", "connect_diagnostics", "list_servers"]

_INSTALL = "MCP tools need the mcp extra: pip install 'dagwright[mcp]'"


def _import_mcp() -> Any:
    try:
        import mcp
    except ImportError as exc:  # the extra is optional
        raise ImportError(_INSTALL) from exc
    return mcp


def _first_error(exc: BaseException) -> BaseException:
    """The first leaf of an exception group (anyio wraps a failing transport's error in one)."""
    leaves = getattr(exc, "exceptions", None)  # BaseExceptionGroup, or its backport on Python 3.10
    while leaves:
        exc = leaves[0]
        leaves = getattr(exc, "exceptions", None)
    return exc


class MCPTools:
    """An MCP server whose tools an agent may call (see the module docstring)."""

    def __init__(
        self,
        command: str | None = None,
        *args: str,
        url: str | None = None,
        name: str | None = None,
        tools: Iterable[str] | None = None,
        env: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        timeout: float = 30.0,
    ) -> None:
        if (command is None) == (url is None):
            raise ValueError("MCPTools needs a command (stdio) or url= (streamable HTTP), and not both")
        if command is not None and not args and " " in command.strip():
            command, *rest = shlex.split(command)
            args = tuple(rest)
        self.command = command
        self.args = tuple(args)
        self.url = url
        self.env = dict(env or {})
        self.headers = dict(headers or {})
        self.cwd = cwd
        self.timeout = timeout
        self.expected: tuple[str, ...] | None = tuple(tools) if tools is not None else None
        self.name = name or self._default_name()
        self._listed: list[ToolSpec] | None = None

    def __repr__(self) -> str:
        return f"MCPTools({self.name!r}, {self.shown})"

    def _default_name(self) -> str:
        if self.url is not None:
            return urlsplit(self.url).hostname or "mcp"
        script = next((a for a in self.args if not a.startswith("-")), self.command or "mcp")
        return os.path.splitext(os.path.basename(script))[0] or "mcp"

    @property
    def transport(self) -> str:
        return "http" if self.url is not None else "stdio"

    @property
    def shown(self) -> str:
        """The command or URL as a message or the IR may show it: no credentials."""
        if self.url is not None:
            return strip_url(self.url)
        words = [self.command or "", *self.args]
        return " ".join(
            REDACTED if looks_like_credential(w) or ("=" in w and looks_like_credential(w.split("=", 1)[1])) else w
            for w in words
        )

    def ir_entry(self) -> dict[str, Any]:
        """This server as the IR lists it (see :mod:`dagwright.compiler.tools`)."""
        entry: dict[str, Any] = {"name": self.name, "transport": self.transport}
        entry["url" if self.url is not None else "command"] = self.shown
        entry["tools"] = list(self.expected) if self.expected is not None else None
        if self._listed is not None:
            kept = [s for s in self._listed if self.expected is None or s.name in self.expected]
            entry["listed"] = [spec.to_json() for spec in kept]
        return entry

    # ------------------------------------------------------------------ connecting

    def _target(self) -> Any:
        mcp = _import_mcp()
        if self.url is not None:
            from mcp.client.streamable_http import streamable_http_client
            from mcp.shared._httpx_utils import create_mcp_http_client

            http = create_mcp_http_client(headers=self.headers or None)
            return streamable_http_client(self.url, http_client=http)
        return mcp.StdioServerParameters(
            command=self.command or "", args=list(self.args), env=self.env or None, cwd=self.cwd
        )

    @contextlib.asynccontextmanager
    async def _client(self) -> AsyncIterator[Any]:
        mcp = _import_mcp()
        client = mcp.Client(self._target(), read_timeout_seconds=self.timeout)
        try:
            entered = await client.__aenter__()
        except Exception as exc:
            cause = _first_error(exc)
            raise ConnectionError(
                f"MCP server {self.name!r} ({self.transport}: {self.shown}) did not answer: "
                f"{type(cause).__name__}: {cause}"
            ) from None
        try:
            yield entered
        finally:
            await client.__aexit__(None, None, None)

    async def _list(self, client: Any) -> list[Any]:
        listed: list[Any] = []
        cursor: str | None = None
        for _ in range(100):  # a server whose pages never end cannot hang the run
            page = await client.list_tools(cursor=cursor)
            listed.extend(page.tools)
            cursor = page.next_cursor
            if cursor is None:
                break
        return listed

    def _spec(self, tool: Any) -> ToolSpec:
        origin = {"kind": "mcp", "server": self.name, "transport": self.transport}
        return ToolSpec(tool.name, tool.description or "", dict(tool.input_schema), origin)

    @property
    def connection_key(self) -> tuple[Any, ...]:
        """What makes two :class:`MCPTools` the same server: the agents of a run that name it share one
        connection, whatever tools each keeps."""
        return (
            "mcp",
            self.command,
            self.args,
            tuple(sorted(self.env.items())),
            None if self.cwd is None else os.fspath(self.cwd),
            self.url,
            tuple(sorted(self.headers.items())),
            self.timeout,
        )

    async def _open(self) -> Opened:
        """Connect and list the tools, in a task that owns the connection until the run closes it (an SDK
        client is left by the task that entered it)."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[_Connection] = loop.create_future()
        stop = asyncio.Event()

        async def own() -> None:
            try:
                async with self._client() as client:
                    listed = await self._list(client)
                    ready.set_result(_Connection(client, listed, owner))
                    await stop.wait()
            except asyncio.CancelledError:
                if not ready.done():
                    ready.cancel()
                raise
            except Exception as exc:  # handed to whoever waits for the connection
                if not ready.done():
                    ready.set_exception(_first_error(exc))

        owner = loop.create_task(own(), name=f"dagwright MCP server {self.name}")
        try:
            connection = await ready
        except BaseException:
            owner.cancel()
            await asyncio.gather(owner, return_exceptions=True)
            raise

        async def close() -> None:
            stop.set()
            await asyncio.gather(owner, return_exceptions=True)

        return connection, close

    async def _connection(self, *, ahead: bool = False) -> _Connection:
        """The run's connection to this server (opened and listed on first use); its listing is kept for the IR.
        ``ahead``: asked before any agent needs it; a failure is kept for the first agent that does."""
        resources = current_resources()
        assert resources is not None, "MCPTools._connection() runs inside a run's resources"
        connection: _Connection = await resources.get(self.connection_key, self._open, forget_failure=not ahead)
        if connection.closed:  # the server went away (a stdio server exited): connect again
            resources.forget(self.connection_key, connection)
            connection = await resources.get(self.connection_key, self._open, forget_failure=not ahead)
        self._listed = [self._spec(t) for t in connection.listed]
        return connection

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[Sequence[CallableTool]]:
        """The server's tools for one execution: on the run's connection when the execution is part of a
        run (every agent of the run naming this server shares it, listed once), else on a connection of
        the execution's own, closed when the context is."""
        async with _run_resources():
            connection = await self._connection()
            listed = connection.listed
            names = {t.name for t in listed}
            missing = [n for n in self.expected or () if n not in names]
            if missing:
                raise ToolError(
                    f"MCP server {self.name!r} has no tool {', '.join(map(repr, missing))}; "
                    f"it has: {', '.join(sorted(names)) or 'none'}"
                )
            keep = [t for t in listed if self.expected is None or t.name in self.expected]
            refused = [t.name for t in keep if not TOOL_NAME.fullmatch(t.name)]
            if refused:
                raise ValueError(
                    f"MCP server {self.name!r} offers tools whose names model servers refuse ({TOOL_NAME_RULE}): "
                    f"{', '.join(map(repr, refused))}; keep the others with tools=[...]"
                )
            yield [_RemoteTool(connection, self._spec(t), self) for t in keep]

    async def alist_tools(self) -> list[ToolSpec]:
        """The server's tools, listed (on the run's connection inside a run, else on a short one) and kept:
        from now on the IR lists their schemas."""
        async with _run_resources():
            await self._connection()
        return list(self._listed or ())

    def connect(self) -> list[ToolSpec]:
        """:meth:`alist_tools` from sync code."""
        return run_sync(self.alist_tools())


class _Connection:
    """A connected server: the SDK client, the tools it listed when it connected, and the task that holds it
    (done once the connection is over)."""

    __slots__ = ("client", "listed", "lost", "owner")

    def __init__(self, client: Any, listed: list[Any], owner: asyncio.Task[None]) -> None:
        self.client = client
        self.listed = listed
        self.owner = owner
        self.lost = False  # a call found the connection closed under it

    @property
    def closed(self) -> bool:
        return self.lost or self.owner.done()


@contextlib.asynccontextmanager
async def _run_resources() -> AsyncIterator[RunResources]:
    """The current run's resources, or resources of this call's own, closed when it ends."""
    current = current_resources()
    if current is not None:
        yield current
        return
    own = RunResources()
    token = using_resources(own)
    try:
        yield own
    finally:
        reset_resources(token)
        await own.aclose()


async def list_servers(servers: Iterable[MCPTools], resources: RunResources) -> None:
    """Connect to every server of ``servers`` for the run whose ``resources`` these are, and list its tools
    (a server already connected is not asked again), so that the run's graph lists them. A server that
    does not answer is left to the agents that use it: they fail naming it, under their retry policies."""
    token = using_resources(resources)
    try:
        await asyncio.gather(*(server._connection(ahead=True) for server in servers), return_exceptions=True)
    finally:
        reset_resources(token)


class _RemoteTool:
    """One tool of a connected MCP server."""

    def __init__(self, connection: _Connection, spec: ToolSpec, server: MCPTools) -> None:
        self.connection = connection
        self.spec = spec
        self.name = spec.name
        self.description = spec.description
        self.timeout: float | None = None
        self.server = server

    async def call(self, arguments: Mapping[str, Any]) -> Any:
        try:
            result = await self.connection.client.call_tool(self.name, dict(arguments))
        except Exception as exc:
            if _connection_closed(exc):  # the next agent of the run connects again
                self.connection.lost = True
            raise
        text = "\n".join(getattr(block, "text", "") for block in result.content if getattr(block, "type", "") == "text")
        if result.is_error:
            raise RuntimeError(f"MCP server {self.server.name!r} says: {text or 'the tool failed'}")
        if result.structured_content is not None:
            return result.structured_content
        return text


def _connection_closed(exc: BaseException) -> bool:
    """Whether a failed call says the connection is over (the server exited or hung up)."""
    import anyio
    from mcp.types import CONNECTION_CLOSED

    error = getattr(exc, "error", None)
    if getattr(error, "code", None) == CONNECTION_CLOSED:
        return True
    return isinstance(exc, (anyio.ClosedResourceError, anyio.BrokenResourceError, ConnectionError))


# --------------------------------------------------------------------------- dagwright check --connect


def _servers_of(binding: object) -> list[MCPTools]:
    sources = getattr(binding, "tools", None) or ()
    return [s for s in sources if isinstance(s, MCPTools)]


async def connect_diagnostics(graph: Graph, bindings: Mapping[str, object] | None = None) -> list[Diagnostic]:
    """Connect to every MCP server the graph's agents name and report what is wrong (DW303-DW306).

    A server is taken from the agent's binding when there is one (with its environment and headers),
    otherwise rebuilt from the IR entry (command or URL only)."""
    found: list[Diagnostic] = []
    for node in graph.nodes:
        entries = node.config.get("mcp_servers") if node.kind == "agent" else None
        if not entries:
            continue
        known = {s.name: s for s in _servers_of((bindings or {}).get(node.id))}
        listings: dict[str, list[ToolSpec] | str] = {}
        for entry in entries:
            server = known.get(entry["name"]) or _from_entry(entry)
            try:
                listings[entry["name"]] = await server.alist_tools()
            except (ConnectionError, OSError, ImportError) as exc:
                listings[entry["name"]] = str(exc)
        found.extend(check_connected(node, listings))
    return found


def _from_entry(entry: Mapping[str, Any]) -> MCPTools:
    tools = entry.get("tools")
    if entry.get("transport") == "http":
        return MCPTools(url=str(entry["url"]), name=str(entry["name"]), tools=tools)
    return MCPTools(str(entry["command"]), name=str(entry["name"]), tools=tools)
