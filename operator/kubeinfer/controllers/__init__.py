"""Thin kopf handlers, one module per kind: observe → plan → apply → status.

Every trigger (the resource's own watch events, its children's events, a periodic timer) calls
the same idempotent ``reconcile()``; there are no handler chains keyed on phases and handlers
return nothing (kopf would write return values into ``status``).
"""
