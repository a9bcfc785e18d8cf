"""``bosun gateway``: the receiver of Webhook deliveries (``POST /hooks/<namespace>/<name>``).

``deliveries`` answers one request (the checks in order, then the Run), ``auth`` checks
signatures and tokens, ``lookup`` reads Webhooks and keys with a short cache and keeps the rate
limits, ``tallies`` adds the counts to each Webhook's status, and ``server`` is the HTTP server.
It reads Webhooks and the Secrets they name, creates Runs and writes Webhook status: nothing
else, and it loads neither kopf nor the runner.
"""
