"""Webhooks: the events the server tells receivers of, signed, durable, at least once.

:mod:`~sessions.webhooks.events` names the events; the ledger's writes carry them into the
store's outbox (:mod:`storage.outbox`), and :mod:`~sessions.webhooks.dispatcher` delivers
them from the main process. Endpoints are managed by :mod:`~sessions.webhooks.endpoints`.
"""
