"""The agent bank's side (代理银行): its core banking adapter and its business ledger.

``core`` — :class:`~guoku.bank.core.CoreBanking`, the protocol a real core banking system
implements, and :class:`~guoku.bank.core.SimulatedCoreBanking` with configurable failures.
``ledger`` — advances (垫付) and reimbursements (清算回款) per unit, fund type and day (pure).
"""
