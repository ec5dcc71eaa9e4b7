"""HTML -> PDF with WeasyPrint, allowed to load nothing but embedded ``data:`` resources.

A report quotes untrusted strings (tags, file names). They are HTML-escaped by the template,
and as a second wall the renderer itself refuses every URL that is not a ``data:`` URI: a
``<img src="file:///etc/passwd">`` or ``http://`` beacon that slipped through would stop the
rendering with :class:`ReportError` instead of reading a local file or calling out. All of
the report's own figures and styles are embedded, so a legitimate report never needs more.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as _dt
import os
import re
import threading
import urllib.parse
from functools import lru_cache

from musicbrain_cli.errors import ReportError

# RFC 2397: data:[<mediatype>][;base64],<data>
_DATA_URI = re.compile(r"^data:(?P<type>[^,;]*)(?P<params>(?:;[^,;]*)*),(?P<data>.*)$",
                       re.DOTALL | re.IGNORECASE)


def decode_data_uri(url: str) -> tuple[str, bytes]:
    """``(media type, bytes)`` of an RFC 2397 ``data:`` URI; :class:`ReportError` for any
    other URL, including every scheme that could reach a file or the network."""
    match = _DATA_URI.match(url)
    if match is None:
        raise ReportError(f"refusing to load {url[:80]!r}: reports may embed only data: URIs")
    media_type = match["type"] or "text/plain"
    params = [p.strip().lower() for p in match["params"].split(";") if p.strip()]
    try:
        if "base64" in params:
            data = base64.b64decode(match["data"], validate=False)
        else:
            data = urllib.parse.unquote_to_bytes(match["data"])
    except (binascii.Error, ValueError) as exc:
        raise ReportError(f"malformed data: URI {url[:80]!r}: {exc}") from exc
    return media_type, data


def _fetcher():
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class DataOnlyURLFetcher(URLFetcher):
        """WeasyPrint fetcher that serves ``data:`` URIs and raises for everything else.

        ``fail_on_errors=True`` makes WeasyPrint stop on the refusal (FatalURLFetchingError)
        rather than log a warning and carry on without the resource.
        """

        def __init__(self):
            super().__init__(allowed_protocols=("data",), fail_on_errors=True)
            self.refused: list[str] = []

        def fetch(self, url, headers=None):
            try:
                media_type, data = decode_data_uri(url)
            except ReportError:
                self.refused.append(url)
                raise
            return URLFetcherResponse(url, data, {"Content-Type": media_type})

    return DataOnlyURLFetcher()


#: One rendering at a time in this process: the shared font configuration below (a Pango
#: font map) is not thread-safe, and ``SOURCE_DATE_EPOCH`` is set process-wide while a PDF
#: is written. WeasyPrint holds the GIL throughout, so serialising costs no parallelism.
_RENDER_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _font_config():
    """One WeasyPrint font configuration for every report of the process (issue 27): a fresh
    one per document reloads the fonts and rebuilds Pango's caches. The reports declare no
    ``@font-face``, so nothing of one document is left in it for the next."""
    from weasyprint.text.fonts import FontConfiguration

    return FontConfiguration()


def data_only_url_fetcher():
    """A fresh WeasyPrint URL fetcher that allows only ``data:`` URIs (see module doc)."""
    return _fetcher()


@contextlib.contextmanager
def _source_date_epoch(epoch: int | None):
    """Set ``SOURCE_DATE_EPOCH`` while rendering unless the caller already set it.

    fontTools stamps the current time into the ``head`` table of every font subset it
    embeds, unless this variable (reproducible-builds.org/specs/source-date-epoch) is
    set; without it two renderings of the same report differ. Renderings hold
    ``_RENDER_LOCK``, so the brief change of the process environment is safe here.
    """
    if epoch is None or "SOURCE_DATE_EPOCH" in os.environ:
        yield
        return
    os.environ["SOURCE_DATE_EPOCH"] = str(int(epoch))
    try:
        yield
    finally:
        os.environ.pop("SOURCE_DATE_EPOCH", None)


def html_to_pdf(html: str, *, identifier: bytes | None = None,
                source_date: _dt.datetime | None = None) -> bytes:
    """Render ``html`` (a complete document, resources embedded) to PDF bytes.

    For byte-identical output from identical inputs: ``identifier`` fixes the trailer
    ``/ID``, ``source_date`` the timestamps inside embedded fonts (default: the epoch),
    and the document dates come from its ``<meta name=dcterms.created>``.
    """
    import weasyprint
    from weasyprint.urls import FatalURLFetchingError

    fetcher = _fetcher()
    epoch = int(source_date.timestamp()) if source_date is not None else 0
    try:
        with _RENDER_LOCK, _source_date_epoch(epoch):
            document = weasyprint.HTML(string=html, base_url=None, url_fetcher=fetcher)
            # custom_metadata: the report's own <meta> fields (the analysed audio's SHA-256)
            # go into the document information, which the PDF signature covers
            return document.write_pdf(pdf_identifier=identifier, custom_metadata=True,
                                      font_config=_font_config())
    except FatalURLFetchingError as exc:
        raise ReportError(f"PDF rendering stopped: {exc} ({exc.__cause__})") from exc
