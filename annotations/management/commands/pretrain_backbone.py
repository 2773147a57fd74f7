"""`manage.py pretrain_backbone`: self-supervised pretraining of the learned backbone on the library's own
audio (the pool split; never the held-out split), with a progress bar; resumable."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotations.models import PretrainingRun
from annotations.services.pretraining import PretrainingRefused, held_out_text, pretraining_request


class Command(BaseCommand):
    help = (
        "Pretrain the learned backbone (skey) on the library's pool tracks. By default the run happens in "
        "this process with a progress bar; --queue sends it to the gpu workers instead and follows it."
    )

    def add_arguments(self, parser):
        parser.add_argument("--steps", type=int, help="optimiser steps (default KEYWEB_PRETRAINING_STEPS)")
        parser.add_argument("--queue", action="store_true", help="run on a worker (queue gpu) and follow it")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, steps: int | None, queue: bool, no_progress: bool, **options):
        try:
            run, created = pretraining_request(steps=steps, on_worker=queue)
        except PretrainingRefused as error:
            raise CommandError(str(error)) from error
        if not created:
            self.stdout.write(
                f"pretraining run #{run.pk} is already {run.get_status_display().lower()}; following it"
            )
        elif not queue:
            # Run it here (the only time this process needs torch), with a progress bar.
            from annotations.worker.pretraining import pretraining_run

            self.stdout.write(f"pretraining run #{run.pk}: {run.steps_total} steps in this process")
            with tqdm(total=run.steps_total, unit="step", desc="pretraining", disable=no_progress) as bar:

                def on_step(step: int, steps: int) -> None:
                    bar.n = step
                    bar.refresh()

                pretraining_run(run_id=run.pk, on_step=on_step)
            return self._report(run.pk)
        bar = tqdm(total=run.steps_total, unit="step", desc="pretraining", disable=no_progress)
        self._follow(run.pk, bar)
        return self._report(run.pk)

    def _follow(self, run_id: int, bar) -> None:
        while True:
            run = PretrainingRun.objects.get(pk=run_id)
            bar.n = run.steps_done
            bar.set_postfix_str(run.get_status_display().lower(), refresh=True)
            if run.status in (PretrainingRun.Status.READY, PretrainingRun.Status.FAILED):
                bar.n = run.steps_done
                bar.close()
                return
            time.sleep(1.0)

    def _report(self, run_id: int) -> None:
        run = PretrainingRun.objects.get(pk=run_id)
        if run.status == PretrainingRun.Status.FAILED:
            raise CommandError(f"pretraining run #{run.pk} failed: {run.error}")
        self.stdout.write(
            f"pretraining run #{run.pk} {run.get_status_display().lower()}: {run.steps_done} steps on "
            f"{run.n_tracks} tracks ({run.n_labelled} with a key); checkpoint {run.checkpoint_path} "
            f"(sha256 {run.checkpoint_sha256[:12]}). The next model training uses it."
        )
        self.stdout.write(
            f"The network alone (its own key channels, no head; not a forecast of the next model's score): "
            f"{held_out_text(run.held_out)}."
        )
