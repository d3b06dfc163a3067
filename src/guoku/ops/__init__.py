"""Operations: backup and restore of a node, the emergency paper fallback, signed archives."""
