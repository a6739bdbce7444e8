"""The HTTP API: the app factory, dependencies, the public contract's schemas, and one module of routes per
area.
"""
