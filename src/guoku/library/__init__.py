"""The voucher library service (电子凭证库服务接口): the one API business systems call."""
