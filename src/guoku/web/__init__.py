"""The web apps: the budget units' self-service counter, the monitoring platform, the operator
console, controlled printing, and the HTTP service API for business systems."""
