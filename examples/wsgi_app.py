"""A WSGI application: ``hypercorn wsgi_app:application`` (or ``wsgi:wsgi_app:application``).

Each request runs in the server's thread pool; Flask and Django's WSGI handler
are served the same way.
"""


def application(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length)
    reply = b"%s %s, %d bytes\n" % (
        environ["REQUEST_METHOD"].encode(),
        environ["PATH_INFO"].encode("latin-1"),
        len(body),
    )
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(reply)))])
    return [reply]
