"""The thin HTTP layer: parse, call the core, render. One blueprint per endpoint group.

Views import storage-backed core modules inside the function body: pynamodb pulls in botocore
(~150 ms), and deferring it keeps `import app` cheap so a cold start pays only for what the first
request needs (discovery needs no AWS at all).
"""
