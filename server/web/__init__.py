"""The verification web site and operations view: an HTTP transport beside server.grpc.

Pages for people who scanned a sealed document's QR code, the same answers as JSON, and
read-only operations pages for the node's administrators. It calls the node's use cases
(``tongban.server.web.node_backend``) or a node's published lists
(``tongban.server.web.published_backend``); never the gRPC transport.
"""

from tongban.server.web.site import SiteSettings, create_site

__all__ = ["SiteSettings", "create_site"]
