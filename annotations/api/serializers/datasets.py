"""Dataset exports (query) and label imports (request and report)."""

from __future__ import annotations

from rest_framework import serializers

from ...models import Track


class ExportQuerySerializer(serializers.Serializer):
    consensus_only = serializers.BooleanField(
        required=False, default=True, help_text="Only tracks with a consensus label (default true)"
    )
    split = serializers.ChoiceField(choices=Track.Split.values, required=False)
    since = serializers.DateTimeField(required=False, help_text="Labeled at or after (ISO 8601)")
    until = serializers.DateTimeField(required=False, help_text="Labeled before (ISO 8601)")
    annotations = serializers.BooleanField(
        required=False, default=False, help_text="Add every annotation with its annotator"
    )
    audio = serializers.BooleanField(
        required=False, default=False, help_text="Add the audio files (jams and giantsteps zips only)"
    )
    write_tags = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Write the consensus key into the exported audio copies (ID3 TKEY / INITIALKEY)",
    )

    def validate(self, attrs):
        if attrs.get("since") and attrs.get("until") and attrs["since"] >= attrs["until"]:
            raise serializers.ValidationError({"until": ["must be after since"]})
        if attrs.get("write_tags") and not attrs.get("audio"):
            raise serializers.ValidationError({"write_tags": ["needs audio=true: tags go into audio copies"]})
        return attrs


class ImportRequestSerializer(serializers.Serializer):
    file = serializers.FileField(
        help_text="A KeyWeb CSV or JSONL export, a path,key CSV, a .jams file, or a JAMS / GiantSteps zip"
    )
    format = serializers.ChoiceField(
        choices=["auto", "csv", "jsonl", "jams", "giantsteps"], required=False, default="auto"
    )
    dry_run = serializers.BooleanField(required=False, default=False, help_text="Report, change nothing")


class ImportProblemSerializer(serializers.Serializer):
    where = serializers.CharField(help_text="Line number or file inside the archive")
    message = serializers.CharField()


class ImportReportSerializer(serializers.Serializer):
    format = serializers.CharField()
    dry_run = serializers.BooleanField()
    records = serializers.IntegerField()
    imported = serializers.IntegerField(help_text="Labels added (or that would be, in a dry run)")
    unchanged = serializers.IntegerField(help_text="The track already had this label")
    conflicts = serializers.IntegerField(help_text="The track already had a different imported label; kept")
    unmatched = serializers.IntegerField(help_text="No track with this content hash or file name")
    invalid = serializers.IntegerField(help_text="Unreadable rows or keys")
    empty = serializers.IntegerField(help_text="Rows without a label")
    problems = ImportProblemSerializer(many=True, help_text="The first 500 problems")
