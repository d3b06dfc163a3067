"""Running a province as real processes: signing servers and voucher-library nodes."""
