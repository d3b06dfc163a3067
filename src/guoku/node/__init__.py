"""The node process (节点进程): one voucher-library node wired to the message broker.

``runtime`` runs the relay, consumer, dead-letter and sweeper loops and the health endpoint;
``health`` serves what an operator or an orchestrator polls. Business logic stays in the
messenger and the library; this package only schedules and supervises.
"""
