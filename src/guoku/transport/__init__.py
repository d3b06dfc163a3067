"""Message middleware (消息中间件): envelopes, the outbox relay, transports (embedded, AMQP)."""
