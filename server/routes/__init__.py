"""Thin REST handlers, one module per resource; they call the chat service, never SQL."""
