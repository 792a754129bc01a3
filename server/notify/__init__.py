"""Notifications: officers subscribe, per unit, to what they would otherwise have to
look for every morning; a daily digest per subscription, by e-mail or webhook.

=============== ===========================================================
``config``      the collector's notification config (SMTP, webhooks, hour)
``events``      the event names and what each means
``subscriptions`` subscribe, list, delete (scoped like everything else)
``digest``      what changed for a subscription since its last digest (pure + SQL)
``messages``    the digest's words in sv, da and en
``outbox``      the durable outbox: enqueue, claim, retry with backoff
``channels``    delivery: SMTP with STARTTLS, webhooks signed with HMAC-SHA256
``worker``      the loop that makes digests and delivers them
=============== ===========================================================

Device states come from :mod:`server.readiness` (the one definition); nothing a
digest says is more than the officer already sees on the dashboard: unit paths, host
names, states, check ids and exception expiry.
"""
