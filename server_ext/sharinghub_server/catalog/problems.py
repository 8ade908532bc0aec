"""Problems of the mapping that other parts of the server recognise (kept light: the crawl
status imports it on every server's start, the mapping's own modules are heavy)."""

#: how the problem of an AI model without a model asset begins: the crawl status hides it once
#: a registered model (an overlay) gives the item its model asset, without a crawl
NO_MODEL_ASSET = "mlm: no model asset"
