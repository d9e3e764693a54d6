"""Events and webhooks (SPEC 7): the outbox every change writes to, and the signed sender."""
