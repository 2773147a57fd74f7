"""Upload handling that refuses an oversized file while it streams in, before it fills the disk."""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import StopUpload, TemporaryFileUploadHandler


class SizeLimitedUploadHandler(TemporaryFileUploadHandler):
    """Streams each file to a temporary file; stops reading once one passes KEYWEB MAX_UPLOAD_BYTES.

    The view sees `request.upload_too_large` set and answers 413 with the limit in words.
    """

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > settings.KEYWEB["MAX_UPLOAD_BYTES"]:
            self.request.upload_too_large = self.file_name
            self.file.close()
            raise StopUpload(connection_reset=False)
        return super().receive_data_chunk(raw_data, start)
