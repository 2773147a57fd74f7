"""Serving track audio to logged-in users with HTTP Range support, so the browser can seek."""

from __future__ import annotations

import mimetypes
import re
from pathlib import Path

from django.conf import settings
from django.http import FileResponse, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404

from ..models import Track
from .access import annotator_required

CONTENT_TYPES = {
    "wav": "audio/wav",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "mp3": "audio/mpeg",
    "aiff": "audio/aiff",
}
_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


def _file_chunks(path: Path, start: int, length: int, chunk: int = 1 << 16):
    with open(path, "rb") as handle:
        handle.seek(start)
        while length > 0:
            data = handle.read(min(chunk, length))
            if not data:
                break
            length -= len(data)
            yield data


@annotator_required
def track_audio(request: HttpRequest, pk: int) -> HttpResponse:
    track = get_object_or_404(Track, pk=pk)
    path = Path(settings.MEDIA_ROOT) / track.audio.name
    if not path.is_file():
        return HttpResponse("The audio file of this track is missing on the server.", status=404)
    size = path.stat().st_size
    content_type = CONTENT_TYPES.get(track.audio_format) or mimetypes.guess_type(path.name)[0] or "audio/*"
    match = _RANGE.match(request.headers.get("Range", "").strip())
    if not match or (not match[1] and not match[2]):
        response = FileResponse(open(path, "rb"), content_type=content_type)
        response["Accept-Ranges"] = "bytes"
        return response
    if match[1]:
        start = int(match[1])
        end = min(int(match[2]), size - 1) if match[2] else size - 1
    else:  # suffix range: the last N bytes
        start, end = max(size - int(match[2]), 0), size - 1
    if start >= size or start > end:
        response = HttpResponse(f"Requested range not satisfiable (file has {size} bytes).", status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    length = end - start + 1
    response = StreamingHttpResponse(_file_chunks(path, start, length), status=206, content_type=content_type)
    response["Content-Length"] = str(length)
    response["Content-Range"] = f"bytes {start}-{end}/{size}"
    response["Accept-Ranges"] = "bytes"
    return response
