"""The parties' business systems as far as guoku books them: quotas and ledgers."""
