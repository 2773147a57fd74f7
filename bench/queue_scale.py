"""Queue at scale: fill PostgreSQL with a million tracks and predictions, then time the next-track call,
a re-prediction pass, and show the plans of the next-track queries.

    su postgres -c "createuser -s $USER"; createdb keyweb_bench
    export DATABASE_URL=postgres:///keyweb_bench
    .venv/bin/python manage.py migrate
    .venv/bin/python bench/queue_scale.py --tracks 1000000 --reset --out bench/results/queue_scale.json

Loading is pure SQL (generate_series joined to a small bank of real probability vectors), then VACUUM
ANALYZE. Labeled tracks follow what the queue itself produces: test-split tracks are labeled in
content-hash order (the order the queue serves them), pool tracks anywhere. Embedding rows point at a few
real .npy files of 3-minute synthetic tracks, so re-prediction reads real windows through the real head.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "keyweb.settings")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth.models import Group, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, connections, transaction  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from annotations.models import Annotation, Embedding, ModelVersion, Prediction, Skip, Track  # noqa: E402
from annotations.services.labels import LabelValue  # noqa: E402
from annotations.services.queue import annotation_submit, queue_next  # noqa: E402
from ml.keys import ALL_KEYS, Key  # noqa: E402

BENCH_DIR = Path(settings.VAR_DIR) / "bench"
BANK_SIZE = 4096
N_ANNOTATORS = 8
N_OTHER_USERS = 4
TEST_FRACTION = 0.2


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- assets: a head and real embeddings --------------------------------------------------------------------


def assets_prepare(*, n_files: int) -> tuple[Path, list[tuple[Path, int]]]:
    """The head to predict with (the shipped default head, else one trained here on synthetic tracks) and
    `n_files` real .npy window embeddings of 3-minute synthetic tracks."""
    from annotations.management.commands.setup_keyweb import default_head_path
    from ml.backbones import get_backbone
    from ml.heads import save_head
    from ml.synth import random_spec, render
    from ml.training import TrainingExample, train_key_model

    backbone = get_backbone("pitch_class")
    folder = BENCH_DIR / "embeddings"
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    examples = []
    for i in range(n_files):
        key = ALL_KEYS[i % 24]
        path = folder / f"track_{i:02d}.npy"
        if not path.is_file():
            spec = random_spec(seed=1000 + i, key=key, duration_range=(180.0, 180.0), difficulty=0.5)
            np.save(path, backbone.window_embeddings(render(spec, sample_rate=16000)))
        windows = np.load(path)
        files.append((path, len(windows)))
        examples.append(TrainingExample(window_embeddings=windows, key=key))
    if default_head_path("pitch_class").is_file():
        return default_head_path("pitch_class"), files
    head_path = BENCH_DIR / "head_pitch_class.pt"
    if not head_path.is_file():
        log(
            f"no shipped default head at {default_head_path('pitch_class')}; training a stand-in on {n_files} synthetic tracks"
        )
        trained = train_key_model(train=examples, backbone_name="pitch_class", cyclic=True, time_budget_s=20)
        save_head(head_path, head=trained.head, config=trained.config, metrics=None, extra={"bench": True})
    return head_path, files


def probability_bank(rng: np.random.Generator) -> list[tuple[str, int, float, float, float]]:
    """BANK_SIZE softmax vectors spanning confident to flat, as (json, key, confidence, entropy, margin)."""
    bank = []
    for _ in range(BANK_SIZE):
        logits = rng.normal(size=24) * rng.uniform(0.3, 6.0)
        p = np.exp(logits - logits.max())
        p /= p.sum()
        ranked = np.sort(p)
        entropy = float(-(p * np.log(np.clip(p, 1e-12, 1))).sum())
        bank.append(
            (
                json.dumps([round(float(x), 6) for x in p]),
                int(p.argmax()),
                float(ranked[-1]),
                entropy,
                float(ranked[-1] - ranked[-2]),
            )
        )
    return bank


# --- loading -------------------------------------------------------------------------------------------------


def users_prepare() -> tuple[list[User], list[User]]:
    call_command("setup_keyweb", stdout=open(os.devnull, "w"), stderr=open(os.devnull, "w"))
    group = Group.objects.get(name="annotator")
    annotators, others = [], []
    for name, bucket in [(f"bench-{i}", annotators) for i in range(N_ANNOTATORS)] + [
        (f"bench-other-{i}", others) for i in range(N_OTHER_USERS)
    ]:
        user, _ = User.objects.get_or_create(username=name)
        user.groups.add(group)
        bucket.append(user)
    return annotators, others


def database_reset() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE annotations_prediction, annotations_embedding, annotations_annotation, annotations_skip, "
            "annotations_track RESTART IDENTITY CASCADE"
        )
    ModelVersion.objects.all().delete()


def database_load(
    *,
    n_tracks: int,
    labeled_fraction: float,
    head_path: Path,
    files: list[tuple[Path, int]],
    annotators: list[User],
    others: list[User],
    seed: int,
) -> tuple[ModelVersion, dict]:
    """Tracks, predictions, embeddings, annotations and skips in a handful of INSERT … SELECT statements."""
    timings = {}
    rng = np.random.default_rng(seed)
    version = ModelVersion.objects.create(
        name="default (bench)",
        backbone="pitch_class",
        weights_path=str(head_path),
        status=ModelVersion.Status.READY,
        is_default=True,
    )
    ModelVersion.objects.filter(is_active=True).update(is_active=False)
    ModelVersion.objects.filter(pk=version.pk).update(is_active=True)
    bank = probability_bank(rng)
    labeled_test_cutoff = labeled_fraction * TEST_FRACTION  # lowest hashes of the test split are labeled
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit = off")
        cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
        cursor.execute("SELECT setseed(%s)", [(seed % 1000) / 1000])
        cursor.execute(
            "CREATE TEMP TABLE bench_bank (id int PRIMARY KEY, probabilities jsonb, key_index smallint, "
            "confidence float8, entropy float8, margin float8) ON COMMIT DROP"
        )
        with cursor.copy("COPY bench_bank FROM STDIN") as copy:
            for i, row in enumerate(bank):
                copy.write_row((i, *row))

        started = time.perf_counter()
        cursor.execute(
            """
            INSERT INTO annotations_track (
                id, audio, original_filename, content_hash, size_bytes, audio_format, title, artist,
                duration_s, sample_rate, channels, status, error, analysis_attempts, analysis_started_at,
                split, tuning_cents, consensus_label, consensus_key, consensus_at, needs_review,
                annotation_count, priority, lease_user_id, lease_expires_at, imported_by_id, created_at)
            SELECT i, 'audio/bench/' || i || '.flac', 'bench ' || i || '.flac', h, 4000000 + (i %% 4000) * 1000,
                'flac', 'Track ' || i, 'Artist ' || (i %% 5000), 120 + (i %% 240), 44100, 2,
                status, '', 1, NULL, split, NULL,
                CASE WHEN labeled THEN 'key' ELSE '' END,
                CASE WHEN labeled THEN (i * 7) %% 24 END,
                CASE WHEN labeled THEN now() - interval '2 days' - (i %% 43200) * interval '1 minute' END,
                disputed AND NOT labeled, CASE WHEN labeled THEN 1 WHEN disputed THEN 2 ELSE 0 END,
                CASE WHEN status = 'ready' THEN b.entropy ELSE 0 END,
                CASE WHEN leased THEN (%(others)s::bigint[])[1 + i %% %(n_others)s] END,
                CASE WHEN leased THEN now() + interval '10 minutes' END,
                NULL, now() - interval '30 days'
            FROM (
                SELECT i, h, split, status, r2,
                    status = 'ready' AND (CASE WHEN split = 'test' THEN hash_fraction < %(test_cutoff)s
                                               ELSE r2 < %(labeled)s END) AS labeled,
                    status = 'ready' AND r2 >= 0.995 AS disputed,
                    status = 'ready' AND r3 < 0.001 AS leased
                FROM (
                    SELECT i, h, random() AS r2, random() AS r3, hash_fraction,
                        CASE WHEN hash_fraction < %(test_fraction)s THEN 'test' ELSE 'pool' END AS split,
                        CASE WHEN r1 < 0.01 THEN 'pending' WHEN r1 < 0.02 THEN 'failed' ELSE 'ready' END AS status
                    FROM (
                        SELECT i, h, random() AS r1,
                            ('x' || substr(h, 1, 8))::bit(32)::bigint / 4294967296.0 AS hash_fraction
                        FROM (SELECT i, encode(sha256(('bench-' || i)::bytea), 'hex') AS h
                              FROM generate_series(1, %(n)s::bigint) AS i) hashed
                    ) fractions
                ) drawn
            ) t
            JOIN bench_bank b ON b.id = (t.i * 7919) %% %(bank)s
            """,
            {
                "n": n_tracks,
                "labeled": labeled_fraction,
                "test_cutoff": labeled_test_cutoff,
                "test_fraction": TEST_FRACTION,
                "others": [user.pk for user in others],
                "n_others": len(others),
                "bank": BANK_SIZE,
            },
        )
        timings["tracks_s"] = time.perf_counter() - started

        started = time.perf_counter()
        cursor.execute(
            """
            INSERT INTO annotations_prediction (track_id, model_version_id, probabilities, key_index, confidence,
                entropy, margin, priority, created_at)
            SELECT t.id, %(version)s, b.probabilities, b.key_index, b.confidence, b.entropy, b.margin, b.entropy,
                now() - interval '1 day'
            FROM annotations_track t JOIN bench_bank b ON b.id = (t.id * 7919) %% %(bank)s
            WHERE t.status = 'ready'
            """,
            {"version": version.pk, "bank": BANK_SIZE},
        )
        timings["predictions_s"] = time.perf_counter() - started

        started = time.perf_counter()
        cursor.execute(
            """
            INSERT INTO annotations_embedding (track_id, backbone, semitones, path, n_windows, dim, created_at)
            SELECT t.id, 'pitch_class', 0, (%(paths)s::text[])[1 + t.id %% %(n_files)s],
                (%(windows)s::int[])[1 + t.id %% %(n_files)s], %(dim)s, now() - interval '29 days'
            FROM annotations_track t WHERE t.status = 'ready'
            """,
            {
                "paths": [str(path) for path, _ in files],
                "windows": [n for _, n in files],
                "n_files": len(files),
                "dim": int(np.load(files[0][0]).shape[1]),
            },
        )
        timings["embeddings_s"] = time.perf_counter() - started

        started = time.perf_counter()
        # Each labeled track carries its annotator's label; disputed tracks two that disagree.
        cursor.execute(
            """
            INSERT INTO annotations_annotation (track_id, annotator_id, label, key_index, tuning_cents,
                time_spent_s, notes, source, created_at)
            SELECT t.id, (%(annotators)s::bigint[])[1 + t.id %% %(n)s], 'key', t.consensus_key, NULL::float8, 25, '',
                'annotator', now() - interval '2 days'
            FROM annotations_track t WHERE t.consensus_label = 'key'
            UNION ALL
            SELECT t.id, (%(annotators)s::bigint[])[1 + (t.id + k) %% %(n)s], 'key', (t.id + k) %% 24, NULL, 25,
                '', 'annotator', now() - interval '2 days'
            FROM annotations_track t, generate_series(0, 1) AS k WHERE t.needs_review
            """,
            {"annotators": [user.pk for user in annotators], "n": len(annotators)},
        )
        # Each annotator passed on a few hundred tracks today.
        cursor.execute(
            """
            INSERT INTO annotations_skip (track_id, annotator_id, created_at)
            SELECT t.id, (%(annotators)s::bigint[])[1 + (t.id / 500) %% %(n)s], now() - interval '1 hour'
            FROM annotations_track t
            WHERE t.status = 'ready' AND t.consensus_label = '' AND t.id %% 500 = 0
            """,
            {"annotators": [user.pk for user in annotators], "n": len(annotators)},
        )
        timings["annotations_skips_s"] = time.perf_counter() - started
        for table in ("track", "prediction", "embedding", "annotation", "skip"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('annotations_{table}', 'id'), "
                f"(SELECT coalesce(max(id), 1) FROM annotations_{table}))"
            )
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    timings["vacuum_analyze_s"] = time.perf_counter() - started
    return version, {name: round(value, 1) for name, value in timings.items()}


def database_census() -> dict:
    open_tracks = Track.objects.filter(status=Track.Status.READY, consensus_label="", needs_review=False)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
        size = cursor.fetchone()[0]
    return {
        "tracks": Track.objects.count(),
        "labeled": Track.objects.exclude(consensus_label="").count(),
        "labeled_test": Track.objects.exclude(consensus_label="").filter(split=Track.Split.TEST).count(),
        "open_pool": open_tracks.filter(split=Track.Split.POOL).count(),
        "open_test": open_tracks.filter(split=Track.Split.TEST).count(),
        "predictions": Prediction.objects.count(),
        "embeddings": Embedding.objects.count(),
        "annotations": Annotation.objects.count(),
        "skips": Skip.objects.count(),
        "database_size": size,
    }


# --- measuring -------------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _label_loop(users: list[User], n_calls: int) -> tuple[list[float], list[float], list[str]]:
    """queue_next then annotation_submit, round robin over `users`; returns ms per call and split served."""
    next_ms, submit_ms, splits = [], [], []
    for call in range(n_calls):
        user = users[call % len(users)]
        started = time.perf_counter()
        track = queue_next(user=user)
        next_ms.append((time.perf_counter() - started) * 1000)
        if track is None:
            continue
        splits.append(track.split)
        started = time.perf_counter()
        annotation_submit(
            user=user, track=track, label=LabelValue(label="key", key=Key.from_index(track.pk % 24))
        )
        submit_ms.append((time.perf_counter() - started) * 1000)
    connections.close_all()
    return next_ms, submit_ms, splits


def measure_queue(annotators: list[User], *, n_calls: int, workers: int) -> dict:
    """`n_calls` labeling rounds by the annotators, split over `workers` threads (one DB connection each)."""
    groups = [annotators[w::workers] for w in range(workers)]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda group: _label_loop(group, n_calls // workers), groups))
    wall = time.perf_counter() - started
    next_ms = [ms for result in results for ms in result[0]]
    submit_ms = [ms for result in results for ms in result[1]]
    splits = [split for result in results for split in result[2]]
    return {
        "workers": workers,
        "calls": len(next_ms),
        "queue_next_ms": {
            "p50": round(percentile(next_ms, 50), 2),
            "p90": round(percentile(next_ms, 90), 2),
            "p99": round(percentile(next_ms, 99), 2),
            "max": round(max(next_ms), 2),
            "mean": round(statistics.fmean(next_ms), 2),
        },
        "annotation_submit_ms": {
            "p50": round(percentile(submit_ms, 50), 2),
            "p99": round(percentile(submit_ms, 99), 2),
        },
        "served_test_share": round(splits.count(Track.Split.TEST) / max(len(splits), 1), 3),
        "labels_per_s": round(len(submit_ms) / wall, 1),
    }


def queue_next_statements(user: User, *, test_fraction: float | None = None) -> list[dict]:
    """Every statement one queue_next call runs, with its time and its EXPLAIN (ANALYZE, BUFFERS) plan.

    `test_fraction` overrides KEYWEB["TEST_FRACTION"] (0 serves the pool split, 1 the held-out one). The
    call and the EXPLAINs run inside a transaction that is rolled back, so nothing is leased."""
    from django.test import override_settings

    keyweb = dict(settings.KEYWEB)
    if test_fraction is not None:
        keyweb["TEST_FRACTION"] = test_fraction
    statements = []
    with transaction.atomic(), override_settings(KEYWEB=keyweb):
        with CaptureQueriesContext(connection) as captured:
            queue_next(user=user)
        for query in captured.captured_queries:
            sql = query["sql"]
            if sql.startswith(("SAVEPOINT", "RELEASE SAVEPOINT")):
                continue
            entry = {"sql": sql, "ms": round(float(query["time"]) * 1000, 2)}
            if sql.lstrip().upper().startswith("SELECT"):
                with connection.cursor() as cursor:
                    cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
                    entry["plan"] = "\n".join(row[0] for row in cursor.fetchall())
            statements.append(entry)
        transaction.set_rollback(True)
    return statements


def measure_repredict(version: ModelVersion, *, n_tracks: int, seed: int) -> dict:
    """tracks_predict over `n_tracks` random analysed tracks with the active head, plus its parts."""
    from annotations.worker.backbones import head_for
    from annotations.worker.prediction import tracks_predict
    from ml.heads import predict_tracks

    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(%s)", [(seed % 1000) / 1000])
        cursor.execute(
            "SELECT id FROM annotations_track WHERE status = 'ready' ORDER BY random() LIMIT %s", [n_tracks]
        )
        ids = [row[0] for row in cursor.fetchall()]
    head = head_for(version).head  # loaded once per worker process; not part of a pass
    started = time.perf_counter()
    predicted = tracks_predict(track_ids=ids, model_version_id=version.pk)
    total = time.perf_counter() - started
    # The parts, timed apart: reading the windows, the head's forward pass.
    paths = dict(Embedding.objects.filter(track_id__in=ids, semitones=0).values_list("track_id", "path"))
    started = time.perf_counter()
    windows = [np.load(paths[i]) for i in ids]
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    predict_tracks(head, windows)
    forward_s = time.perf_counter() - started
    per_10k = 10_000 / max(predicted, 1)
    return {
        "tracks": predicted,
        "seconds": round(total, 2),
        "seconds_per_10k": round(total * per_10k, 2),
        "npy_load_s_per_10k": round(load_s * per_10k, 2),
        "head_forward_s_per_10k": round(forward_s * per_10k, 2),
        "database_s_per_10k": round((total - load_s - forward_s) * per_10k, 2),
        "windows_per_track": round(statistics.fmean(len(w) for w in windows), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=1_000_000)
    parser.add_argument("--labeled-fraction", type=float, default=0.1, help="share already labeled")
    parser.add_argument("--reset", action="store_true", help="empty the track tables first")
    parser.add_argument("--skip-load", action="store_true", help="measure the data already loaded")
    parser.add_argument("--calls", type=int, default=500, help="queue_next calls per measurement")
    parser.add_argument("--workers", default="1,4", help="concurrent annotator threads to measure with")
    parser.add_argument(
        "--repredict", type=int, default=10_000, help="tracks in the re-prediction pass (0: skip)"
    )
    parser.add_argument("--npy-files", type=int, default=24, help="real embedding files to point rows at")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "queue_scale.json")
    args = parser.parse_args(argv)
    if connection.vendor != "postgresql":
        parser.error("run against PostgreSQL: DATABASE_URL=postgres:///keyweb_bench (migrate first)")

    result: dict = {"arguments": {k: str(v) for k, v in vars(args).items()}}
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        result["postgres"] = cursor.fetchone()[0]
        cursor.execute("SHOW shared_buffers")
        result["shared_buffers"] = cursor.fetchone()[0]
    annotators, others = users_prepare()
    if not args.skip_load:
        if Track.objects.exists() and not args.reset:
            parser.error("the database already holds tracks: pass --reset to replace them or --skip-load")
        log("preparing the head and real embedding files")
        head_path, files = assets_prepare(n_files=args.npy_files)
        database_reset()
        log(f"loading {args.tracks:,} tracks")
        started = time.perf_counter()
        version, result["load_s"] = database_load(
            n_tracks=args.tracks,
            labeled_fraction=args.labeled_fraction,
            head_path=head_path,
            files=files,
            annotators=annotators,
            others=others,
            seed=args.seed,
        )
        result["load_s"]["total_s"] = round(time.perf_counter() - started, 1)
        log(f"loaded in {result['load_s']['total_s']} s: {result['load_s']}")
    version = ModelVersion.objects.get(is_active=True)
    result["head"] = version.weights_path
    result["census"] = database_census()
    log(f"census: {result['census']}")

    # The machine is shared: record how busy it was, since every figure below is wall-clock time.
    result["loadavg_before"] = [round(x, 2) for x in os.getloadavg()]
    result["plans"] = {
        "pool": queue_next_statements(annotators[0], test_fraction=0.0),
        "test": queue_next_statements(annotators[1], test_fraction=1.0),
    }
    for split, statements in result["plans"].items():
        for statement in statements:
            log(f"{split} {statement['ms']:8.2f} ms  {statement['sql'][:120]}")
    result["queue"] = []
    for workers in [int(w) for w in args.workers.split(",") if w.strip()]:
        log(f"timing {args.calls} queue_next calls by {N_ANNOTATORS} annotators on {workers} thread(s)")
        result["queue"].append(measure_queue(annotators, n_calls=args.calls, workers=workers))
        log(json.dumps(result["queue"][-1]))
    if args.repredict:
        log(f"re-predicting {args.repredict:,} tracks")
        result["repredict"] = measure_repredict(version, n_tracks=args.repredict, seed=args.seed)
        log(json.dumps(result["repredict"]))
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
