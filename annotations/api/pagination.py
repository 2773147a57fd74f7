"""Page-number pagination with a client-chosen page size (bounded), refused with a 400 when it is not a whole
number from 1 to the maximum (DRF's own silently falls back to the default, which the schema did not say).
Imports nothing from this package: DRF loads the class while annotations.api.errors is being imported."""

from __future__ import annotations

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination


class KeyWebPagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request) -> int:
        text = request.query_params.get(self.page_size_query_param)
        if text is None:
            return self.page_size
        size = int(text) if text.strip().isdigit() and len(text) < 10 else 0
        if not 1 <= size <= self.max_page_size:
            message = f"must be a whole number from 1 to {self.max_page_size}"
            raise ValidationError({self.page_size_query_param: [message]})
        return size

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["maximum"] = self.max_page_size
        return parameters
