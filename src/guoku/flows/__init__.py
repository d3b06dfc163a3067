"""The business flows of DOMAIN.md section 5, each module reading as its seed paragraph.

A flow drives the voucher libraries of the parties through their clerks' desks (entry, review,
seal and send; receive and accept), so every step obeys the same permissions, separation of
duties, seals and receipts as a person at the counter would.
"""
