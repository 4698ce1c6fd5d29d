"""Views of a graph: Graphviz and Mermaid."""
