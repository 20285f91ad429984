"""`supervisor templates`: face templates across face models.

`templates reencode` rebuilds, with the configured engine (`face.engine`), the
templates of every learner who has templates of other models only, from the
learner's retained, consented enrolment photo (the evidence frame each template
names). Each learner is done in one store call, so the command is safe while the
service runs and resumable: run it again and it takes up the learners still
without a template of the model. Learners whose photo is gone (retention, a
damaged frame) are listed: they must enrol again.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass

from tqdm import tqdm

from config import Settings
from storage import Storage
from storage.exceptions import StorageError
from storage.types import TemplateModel
from supervisor.cli.common import open_migrated
from supervisor.ledger import codec
from supervisor.ledger import events as ev
from verification.engines import make_engine
from verification.exceptions import EnrolmentRejected, ImageError
from verification.imageio import decode_image
from verification.protocols import FaceEngine

RECORDED_BY = "reencode"


def add_templates_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    templates = sub.add_parser("templates", help="face templates across face models")
    actions = templates.add_subparsers(dest="templates_command", required=True, metavar="ACTION")
    p = actions.add_parser(
        "reencode",
        help="rebuild templates of other models with the configured engine, from the "
        "enrolment photos; list the learners who must enrol again",
    )
    p.set_defaults(handler=_cmd_reencode)


def _cmd_reencode(settings: Settings, args: argparse.Namespace) -> int:
    with open_migrated(settings) as storage:
        report = reencode(storage, settings, make_engine(settings.face))
    for learner_id, why in report.must_reenrol:
        print(f"learner {learner_id}: must enrol again ({why})", file=sys.stderr)
    print(json.dumps(dataclasses.asdict(report)))
    return 0 if not report.must_reenrol else 1


@dataclass(frozen=True, slots=True)
class ReencodeReport:
    model: str  # the model's short key
    reencoded: tuple[int, ...]  # learners who now have a template of the model
    must_reenrol: tuple[tuple[int, str], ...]  # learners whose photo is gone, and why


def reencode(storage: Storage, settings: Settings, engine: FaceEngine) -> ReencodeReport:
    """Re-encode the templates of learners without one of the engine's model (blocking)."""
    model = TemplateModel(engine.model.engine, engine.model.model_hash)
    todo = storage.templates.learners_without(model)
    done: list[int] = []
    must: list[tuple[int, str]] = []
    limits = settings.images
    for learner_id in tqdm(todo, desc="re-encoding", unit="learner", file=sys.stderr):
        photos = [t.evidence_sha256 for t in storage.templates.for_learner(learner_id)]
        why = "no enrolment photo kept"
        made = False
        for sha in dict.fromkeys(p for p in photos if p):
            try:
                data = storage.evidence.get(sha)
                image = decode_image(data, max_pixels=limits.max_pixels, max_side=limits.max_side)
                encoding = engine.enrol(image)
            except (StorageError, ImageError, EnrolmentRejected) as exc:
                why = f"photo {sha[:12]}: {exc}"
                continue
            template = storage.templates.add(learner_id, encoding.vector, sha, model)
            event = ev.TemplateEnrolled(
                learner_id,
                template.id,
                sha,
                encoding.box.width,
                RECORDED_BY,
                template.created_at,
            )
            storage.ledger.append(ev.learner_chain(learner_id), [codec.encode(event)])
            made = True
        if made:
            done.append(learner_id)
        else:
            must.append((learner_id, why))
    return ReencodeReport(model.key, tuple(done), tuple(must))
