"""Static files storage: hashed, compressed names, with ES module imports rewritten to them.

The chat panel is a set of plain ES modules importing each other (`import ... from "./api.js"`).
Django leaves those imports alone unless asked, so a hashed `chat.js` would load unhashed
siblings, which caches may keep from an older deploy. With `support_js_module_import_aggregation`
the imports point at the hashed names too.
"""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    support_js_module_import_aggregation = True
