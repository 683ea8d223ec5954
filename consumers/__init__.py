"""consumers package of the ZF801 enforcement bus."""
