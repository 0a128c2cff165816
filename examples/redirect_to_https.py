"""Serve the application on TLS, and send plain-HTTP clients to the https URL.

hypercorn -c tls.toml redirect_to_https:app
"""

from hello import app as hello

from hypercorn.middleware import HTTPToHTTPSRedirectMiddleware

# Requests on `insecure_bind` get 307 to https://example.com/...; the others reach hello.
app = HTTPToHTTPSRedirectMiddleware(hello, host="example.com")
