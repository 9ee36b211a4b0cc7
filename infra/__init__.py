"""Infrastructure as code. The runtime never imports this package."""
