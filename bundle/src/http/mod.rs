//! STUB (to be replaced by the proxy owner): HTTP/1.1 request-head parsing.
