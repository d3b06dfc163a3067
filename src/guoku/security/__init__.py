"""National-algorithm security: SM2/SM3/SM4, CA, electronic seals, signing server, USB keys."""
