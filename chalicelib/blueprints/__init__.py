"""The thin HTTP layer: parse, call the core, render. One blueprint per endpoint group."""
