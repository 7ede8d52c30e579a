"""The moderation side in the server, built in this order (each gets the one before):

- ``views.py``     what the engine sees of a message (context, the sender's recent ones)
- ``outcomes.py``  an engine verdict applied through ``contracts.VerdictApplier``
- ``gate.py``      ``ModerationService``: the ``ModerationGate``, the engine, the pipeline
- ``review.py``    the moderators' queue and decisions
- ``tryout.py``    evaluate a text, dry-run a rule
- ``admin.py``     rules, lists and settings as moderators change them

It reaches chat only through ``server.services.contracts`` (a test walks the imports).
"""
