"""guoku — electronic treasury centralized payment (国库集中支付电子化管理)."""

__version__ = "0.1.0"
