"""The pure domain: voucher types, states, money, parties, controls. No I/O lives here."""
