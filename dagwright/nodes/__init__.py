"""Node kinds: what each kind of IR node does when it runs."""
