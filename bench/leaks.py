"""The secret and personal-data checks measured on text nobody here wrote (issue 22).

- Secret recall per gitleaks rule family on gitleaks' own true-positive samples: each rule in
  `cmd/generate/config/rules/*.go` of the pinned module (v8.30.1, from the Go module cache: `make
  gitleaks` downloads it) lists `tps`, either literal strings or `utils.GenerateSampleSecrets(id,
  "prefix" + secrets.NewSecret(regex))`. The Go files are read as data: literals are taken as
  they are; a generated secret is drawn from its regex (utils' helpers read from utils/patterns.go)
  and wrapped in the contexts GenerateSampleSecrets lists (utils/generate.go). Rules whose samples
  are built any other way are counted as not extracted.
- Secret recall and false positives on detect-secrets' own plugin tests: the `(payload,
  should_flag)` tables of `tests/plugins/*_test.py` in Yelp/detect-secrets (fetched; read in
  place from /work/.mirror, with the commit recorded).
- False-positive rate (share of chunks vetoed) on real documentation: the `docs/**/*.rst` of
  Apache Airflow provider sdists (PyPI; `pip download --no-deps --no-binary :all:` of each,
  read from the tarballs), split by a hash of the file path: files with an even hash were the
  tuning split (looked at while the placeholder rules were set), odd ones are the report split.
- Personal-data recall: phonenumbers' own example numbers for every region (E.164 and
  international format; national format for the regions national numbers are read in) and the
  valid IBANs of python-stdnum's own test file (its sdist); false positives on the same docs.

    .venv/bin/python bench/leaks.py --sdists DIR [--detect-secrets-git GITDIR] [--stdnum-sdist FILE]

writes bench/results/leaks.json and prints a short report.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import random
import re
import sre_constants
import sre_parse
import subprocess
import sys
import tarfile
import time
from collections import defaultdict
from datetime import datetime, UTC
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))

from ragloop.local.cluster.gitleaks import GITLEAKS_MODULE, GITLEAKS_VERSION, ensure_binary, module_dir  # noqa: E402
from ragloop.grading.checks import LEAK_REASONS, run_checks_batch  # noqa: E402
from ragloop.grading.personal_data import NATIONAL_REGIONS, find_personal_data  # noqa: E402
from ragloop.grading.secrets import SecretScanner  # noqa: E402
from ragloop.runs.models import QaRun  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "leaks.json"
RANDOM = random.Random(22)


# --- gitleaks' true-positive samples, read from its Go source -------------------------------------
GO_STRING = r'(?:"(?:[^"\\\n]|\\.)*"|`[^`]*`)'


def go_string(literal: str) -> str:
    if literal.startswith("`"):
        return literal[1:-1]
    return json.loads(literal) if "\\x" not in literal else ast.literal_eval(literal)


def helper_patterns(utils_dir: Path) -> dict[str, str]:
    """utils.Hex("32") -> [a-f0-9]{32}: each helper's Sprintf template from utils/patterns.go."""
    helpers = {}
    source = (utils_dir / "patterns.go").read_text()
    for name, body in re.findall(r"func (\w+)\([^)]*\) string \{\s*return ([^\n]+)\n", source):
        sprintf = re.match(r"fmt\.Sprintf\((`[^`]*`|\"[^\"]*\"), \w+\)", body)
        if sprintf:
            helpers[name] = go_string(sprintf.group(1))
        elif re.fullmatch(GO_STRING, body.strip()):
            helpers[name] = go_string(body.strip()).replace("%", "%%")
    return helpers


def sample_contexts(utils_dir: Path) -> list[str]:
    """The templates GenerateSampleSecrets wraps a secret in ({i}, {I}, {s}), from utils/generate.go."""
    source = (utils_dir / "generate.go").read_text()
    block = source[source.index("func GenerateSampleSecrets") :]
    block = block[: block.index("replacer :=")]
    templates = []
    for line in block.splitlines():
        if line.strip().startswith("//"):
            continue
        found = re.search(r'"[^"]+":\s*(' + GO_STRING + "),", line)
        if found:
            templates.append(go_string(found.group(1)))
    return templates


def draw(pattern: str) -> str:
    """A random string the regex matches (what secrets.NewSecret does), via Python's parser."""

    def walk(items) -> str:
        out = []
        for op, arg in items:
            if op is sre_constants.LITERAL:
                out.append(chr(arg))
            elif op is sre_constants.IN:
                chars = []
                negate = False
                for kind, value in arg:
                    if kind is sre_constants.LITERAL:
                        chars.append(chr(value))
                    elif kind is sre_constants.RANGE:
                        chars.extend(chr(c) for c in range(value[0], value[1] + 1))
                    elif kind is sre_constants.CATEGORY:
                        chars.extend({"CATEGORY_DIGIT": "0123456789", "CATEGORY_WORD": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_",
                                      "CATEGORY_SPACE": " "}.get(str(value), "x"))
                    elif kind is sre_constants.NEGATE:
                        negate = True
                if negate:
                    chars = [c for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" if c not in chars]
                out.append(RANDOM.choice(chars))
            elif op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT):
                low, high, sub = arg
                high = low + 8 if high is sre_constants.MAXREPEAT else high
                out.extend(walk(sub) for _ in range(RANDOM.randint(low, high)))
            elif op is sre_constants.SUBPATTERN:
                out.append(walk(arg[-1]))
            elif op is sre_constants.BRANCH:
                out.append(walk(RANDOM.choice(arg[1])))
            elif op is sre_constants.ANY:
                out.append(RANDOM.choice("abcdef0123"))
            elif op is sre_constants.CATEGORY or op is sre_constants.AT:
                continue
            else:
                raise ValueError(f"unsupported regex construct {op}")
        return "".join(out)

    return walk(sre_parse.parse(pattern))


def evaluate(expression: str, helpers: dict[str, str]) -> str | None:
    """A Go string expression of literals, `secrets.NewSecret(...)` and `utils.Helper("n")`
    joined by `+`, as one string; None when it holds anything else."""
    parts = []
    rest = expression.strip()
    while rest:
        literal = re.match(GO_STRING, rest)
        helper = re.match(r'utils\.(\w+)\(("?\d*"?)\)', rest)
        secret = re.match(r"secrets\.NewSecret\(", rest)
        if literal:
            parts.append(go_string(literal.group()))
            rest = rest[literal.end() :]
        elif helper and helper.group(1) in helpers:
            size = helper.group(2).strip('"')
            parts.append(helpers[helper.group(1)] % size if "%s" in helpers[helper.group(1)] else helpers[helper.group(1)].replace("%%", "%"))
            rest = rest[helper.end() :]
        elif secret:
            inner, end = balanced(rest, secret.end() - 1)
            regex = evaluate(inner, helpers)
            if regex is None:
                return None
            try:
                parts.append(draw(regex))
            except (ValueError, re.error, sre_constants.error):
                return None
            rest = rest[end:]
        else:
            return None
        rest = rest.strip()
        if rest.startswith("+"):
            rest = rest[1:].strip()
        elif rest:
            return None
    return "".join(parts)


def balanced(text: str, open_at: int) -> tuple[str, int]:
    """The text inside the parenthesis opening at `open_at`, and the index after its close."""
    depth, i, in_string = 0, open_at, None
    while i < len(text):
        c = text[i]
        if in_string:
            if c == "\\" and in_string == '"':
                i += 1
            elif c == in_string:
                in_string = None
        elif c in "\"`":
            in_string = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : i], i + 1
        i += 1
    raise ValueError("unbalanced")


def split_arguments(text: str) -> list[str]:
    args, depth, current, in_string, i = [], 0, [], None, 0
    while i < len(text):
        c = text[i]
        if in_string:
            current.append(c)
            if c == "\\" and in_string == '"':
                current.append(text[i + 1])
                i += 1
            elif c == in_string:
                in_string = None
        elif c in "\"`":
            in_string = c
            current.append(c)
        elif c in "([{":
            depth += 1
            current.append(c)
        elif c in ")]}":
            depth -= 1
            current.append(c)
        elif c == "," and depth == 0:
            args.append("".join(current).strip())
            current = []
        else:
            current.append(c)
        i += 1
    if "".join(current).strip():
        args.append("".join(current).strip())
    return args


def gitleaks_samples(module: Path) -> tuple[dict[str, list[str]], list[str]]:
    """rule id -> its true-positive samples; and the rule ids whose samples could not be read."""
    config = module / "cmd" / "generate" / "config"
    helpers = helper_patterns(config / "utils")
    contexts = sample_contexts(config / "utils")
    samples: dict[str, list[str]] = defaultdict(list)
    unread = []
    for path in sorted((config / "rules").glob("*.go")):
        if path.name.endswith("_test.go"):
            continue
        source = path.read_text()
        for function in re.split(r"\nfunc ", source)[1:]:
            rule = re.search(r'RuleID:\s*"([^"]+)"', function)
            if not rule:
                continue
            rule_id = rule.group(1)
            region_start = function.find("tps")
            if region_start < 0:
                unread.append(rule_id)
                continue
            stop = min(i for i in (function.find("fps", region_start), function.find("return utils.Validate", region_start), len(function)) if i >= 0)
            region = function[region_start:stop]
            got = []
            for call in re.finditer(r"utils\.GenerateSampleSecrets?\(", region):
                inner, _ = balanced(region, call.end() - 1)
                args = split_arguments(inner)
                if len(args) != 2:
                    continue
                identifier, secret = evaluate(args[0], helpers), evaluate(args[1], helpers)
                if identifier is None or secret is None:
                    continue
                if call.group().endswith("Secrets("):
                    got += [c.replace("{i}", identifier).replace("{I}", identifier.upper()).replace("{s}", secret) for c in contexts]
                else:
                    got.append(f'{identifier}_api_token = "{secret}"')
            # Literal elements of `[]string{...}` (strings or expressions of literals and NewSecret).
            for block in re.finditer(r"\[\]string\{", region):
                inner, _ = balanced(region, block.end() - 1)
                inner = re.sub(r"//[^\n]*", "", inner) if "`" not in inner else inner
                for argument in split_arguments(inner):
                    if not argument or "GenerateSample" in argument:
                        continue
                    value = evaluate(argument, helpers)
                    if value:
                        got.append(value)
            if got:
                samples[rule_id].extend(got)
            else:
                unread.append(rule_id)
    return dict(samples), unread


def family(rule_id: str) -> str:
    return rule_id.split("-")[0]


# --- detect-secrets' plugin tests ------------------------------------------------------------------
def detect_secrets_cases(git_dir: Path) -> tuple[str, list[tuple[str, str, bool]]]:
    def git(*args: str) -> str:
        return subprocess.run(["git", "--git-dir", str(git_dir), *args], capture_output=True, text=True, check=True).stdout

    commit = git("rev-parse", "HEAD").strip()
    cases = []
    for path in git("ls-tree", "--name-only", "HEAD", "tests/plugins/").split():
        if not path.endswith("_test.py") or path.endswith(("base_test.py", "high_entropy_strings_test.py", "ip_public_test.py")):
            continue  # the base class, and the plugins we do not use (entropy, public IPs)
        tree = ast.parse(git("show", f"HEAD:{path}"))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "parametrize" and len(node.args) >= 2):
                continue
            try:
                names = ast.literal_eval(node.args[0])
                rows = ast.literal_eval(node.args[1])
            except (ValueError, SyntaxError):
                continue
            names = [n.strip() for n in (names.split(",") if isinstance(names, str) else names)]
            if "should_flag" not in names:
                continue
            text_at = next((i for i, n in enumerate(names) if n in ("payload", "line", "secret", "token")), 0)
            flag_at = names.index("should_flag")
            for row in rows:
                row = row if isinstance(row, tuple) else (row,)
                if isinstance(row[text_at], str) and isinstance(row[flag_at], bool):
                    cases.append((Path(path).stem.removesuffix("_test"), row[text_at], row[flag_at]))
    return commit, cases


# --- documentation: Airflow provider sdists -------------------------------------------------------
def doc_chunks(sdists: Path) -> tuple[list[dict], list[dict]]:
    """Chunks (paragraph groups of at most ~1,200 characters) of every docs/**/*.rst, and the
    provenance of each sdist."""
    chunks, provenance = [], []
    for tarball in sorted(sdists.glob("apache_airflow_providers_*.tar.gz")):
        files = 0
        with tarfile.open(tarball) as archive:
            for member in archive.getmembers():
                if not (member.isfile() and "/docs/" in member.name and member.name.endswith(".rst")):
                    continue
                text = archive.extractfile(member).read().decode("utf-8", "replace")  # type: ignore[union-attr]
                files += 1
                split = "tune" if int(hashlib.sha256(member.name.encode()).hexdigest(), 16) % 2 == 0 else "report"
                current = ""
                for paragraph in re.split(r"\n\s*\n", text):
                    if current and len(current) + len(paragraph) > 1200:
                        chunks.append({"file": member.name, "split": split, "text": current})
                        current = ""
                    current = f"{current}\n\n{paragraph}" if current else paragraph
                if current.strip():
                    chunks.append({"file": member.name, "split": split, "text": current})
        provenance.append({"sdist": tarball.name, "sha256": hashlib.sha256(tarball.read_bytes()).hexdigest(), "rst_files": files})
    return chunks, provenance


def stdnum_ibans(sdist: Path) -> list[str]:
    with tarfile.open(sdist) as archive:
        for member in archive.getmembers():
            if member.name.endswith("tests/test_iban.doctest"):
                text = archive.extractfile(member).read().decode()  # type: ignore[union-attr]
                block = text.split(">>> numbers = '''", 1)[1].split("'''", 1)[0]
                lines = [line.strip().removeprefix("...").strip() for line in block.splitlines()]
                return [line for line in lines if line and not line.startswith("#")]
    raise SystemExit(f"no tests/test_iban.doctest in {sdist}")


def answer(text: str) -> QaRun:
    """A chunk's text as the answer of a run citing a docs page that does not hold it."""
    return {"question": "How?", "answer": f"{text} [1]", "sources": [{"doc_id": "d", "title": "Docs", "url": "https://docs.example/x", "kind": "docs", "text": "-"}]}


def leak_reasons(vetoes) -> set[str]:
    return {v.reason for v in vetoes} & LEAK_REASONS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sdists", type=Path, required=True, help="folder of apache_airflow_providers_*.tar.gz sdists")
    parser.add_argument("--detect-secrets-git", type=Path, default=Path("/work/.mirror/Yelp+detect-secrets/repo"))
    parser.add_argument("--stdnum-sdist", type=Path, help="python_stdnum-*.tar.gz (its tests hold example IBANs)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    started = time.monotonic()
    scanner = SecretScanner(ensure_binary(progress=print))
    results: dict = {
        "commit": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "inputs": {},
    }

    # 1. gitleaks' own true positives
    module = module_dir()
    samples, unread = gitleaks_samples(module)
    texts = [(rule, text) for rule, group in samples.items() for text in group]
    vetoes = run_checks_batch([answer(text) for _, text in texts], scanner)
    per_family: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    per_rule: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    missed_examples: dict[str, str] = {}
    for (rule, text), found in zip(texts, vetoes, strict=False):
        hit = "secret" in leak_reasons(found)
        for counts, key in ((per_family, family(rule)), (per_rule, rule)):
            counts[key][0] += hit
            counts[key][1] += 1
        if not hit and rule not in missed_examples:
            missed_examples[rule] = text[:20] + "…"
    caught = sum(c for c, _ in per_rule.values())
    results["inputs"]["gitleaks"] = {"module": f"{GITLEAKS_MODULE}@{GITLEAKS_VERSION}", "path": "cmd/generate/config/rules/*.go",
                                     "rules_with_samples": len(samples), "rules_not_extracted": sorted(unread)}
    results["gitleaks_true_positives"] = {
        "samples": len(texts), "caught": caught, "recall": round(caught / len(texts), 4),
        "rules_fully_caught": sum(c == n for c, n in per_rule.values()), "rules": len(per_rule),
        "per_family": {f: {"caught": c, "samples": n, "recall": round(c / n, 3)} for f, (c, n) in sorted(per_family.items())},
        "rules_missed_some": {r: {"caught": c, "samples": n, "first_missed_prefix": missed_examples.get(r)} for r, (c, n) in sorted(per_rule.items()) if c < n},
    }

    # 2. detect-secrets' plugin tests
    if args.detect_secrets_git.exists():
        commit, cases = detect_secrets_cases(args.detect_secrets_git)
        vetoes = run_checks_batch([answer(text) for _, text, _ in cases], scanner)
        table: dict[str, dict[str, int]] = defaultdict(lambda: {"tp": 0, "fn": 0, "fp": 0, "tn": 0})
        for (plugin, _text, should), found in zip(cases, vetoes, strict=False):
            hit = "secret" in leak_reasons(found)
            table[plugin]["tp" if should and hit else "fn" if should else "fp" if hit else "tn"] += 1
        totals = {k: sum(t[k] for t in table.values()) for k in ("tp", "fn", "fp", "tn")}
        results["inputs"]["detect_secrets"] = {"repository": "Yelp/detect-secrets", "commit": commit, "path": "tests/plugins/*_test.py (payload, should_flag)"}
        flagged_negatives = [{"plugin": p, "text_prefix": t[:12] + "…"} for (p, t, should), found in zip(cases, vetoes, strict=False) if not should and "secret" in leak_reasons(found)]
        results["detect_secrets_plugin_tests"] = {
            **totals, "recall": round(totals["tp"] / max(1, totals["tp"] + totals["fn"]), 4),
            "negatives_flagged_rate": round(totals["fp"] / max(1, totals["fp"] + totals["tn"]), 4),
            "note": "a negative there means 'not this plugin's format', not 'not a secret': the gitlab plugin's negatives hold a ghp_ "
                    "token and GitLab tokens of other kinds, the npm plugin's hold _authToken lines without a registry; each flagged one is listed",
            "negatives_flagged": flagged_negatives, "per_plugin": dict(sorted(table.items())),
        }
    else:
        results["detect_secrets_plugin_tests"] = f"absent: fetch github:Yelp/detect-secrets to {args.detect_secrets_git}"

    # 3. false positives on documentation
    chunks, provenance = doc_chunks(args.sdists)
    results["inputs"]["docs"] = {"what": "docs/**/*.rst of Apache Airflow provider sdists (PyPI)", "sdists": provenance,
                                 "chunking": "blank-line paragraphs grouped to at most ~1,200 characters",
                                 "split": "sha256(path inside the sdist) even: tune split, odd: report split"}
    vetoes = run_checks_batch([answer(c["text"]) for c in chunks], scanner)
    docs: dict[str, dict] = {}
    for split in ("tune", "report"):
        rows = [(c, leak_reasons(v)) for c, v in zip(chunks, vetoes, strict=False) if c["split"] == split]
        by_reason: dict[str, int] = defaultdict(int)
        examples: list[dict] = []
        for chunk, reasons in rows:
            for reason in reasons:
                by_reason[reason] += 1
            if reasons and len(examples) < 15:
                detail = [v.detail for v in vetoes[chunks.index(chunk)] if v.reason in reasons]
                examples.append({"file": chunk["file"], "vetoes": detail})
        vetoed = sum(1 for _, r in rows if r)
        secret_vetoed = sum(1 for _, r in rows if "secret" in r)
        docs[split] = {"files": len({c["file"] for c, _ in rows}), "chunks": len(rows), "vetoed": vetoed,
                       "veto_rate": round(vetoed / max(1, len(rows)), 4), "secret_veto_rate": round(secret_vetoed / max(1, len(rows)), 4),
                       "by_reason": dict(by_reason), "examples": examples}
    results["docs_false_positives"] = docs

    # 4. personal data: recall on public samples
    import phonenumbers

    phone_cases = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE):
            number = phonenumbers.example_number_for_type(region, kind)
            if number is None:
                continue
            phone_cases.append(("E164", phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)))
            phone_cases.append(("INTERNATIONAL", phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)))
            phone_cases.append(("RFC3966 (tel:)", phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.RFC3966)))
            if region in NATIONAL_REGIONS:
                phone_cases.append((f"NATIONAL ({region})", phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)))
    phone_hits: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for form, text in phone_cases:
        hit = any(p.kind == "phone" for p in find_personal_data(f"Call {text} for help."))
        phone_hits[form][0] += hit
        phone_hits[form][1] += 1
    pii: dict = {"phones": {f: {"caught": c, "samples": n, "recall": round(c / n, 3)} for f, (c, n) in sorted(phone_hits.items())}}
    results["inputs"]["phones"] = {"package": f"phonenumbers {phonenumbers.__version__}", "what": "example_number_for_type(region, FIXED_LINE|MOBILE) for every supported region"}
    if args.stdnum_sdist:
        ibans = stdnum_ibans(args.stdnum_sdist)
        caught = sum(any(p.kind == "iban" for p in find_personal_data(f"Pay to {i} today.")) for i in ibans)
        pii["ibans"] = {"caught": caught, "samples": len(ibans), "recall": round(caught / max(1, len(ibans)), 3)}
        results["inputs"]["ibans"] = {"sdist": args.stdnum_sdist.name, "sha256": hashlib.sha256(args.stdnum_sdist.read_bytes()).hexdigest(), "path": "tests/test_iban.doctest (the valid numbers block)"}
    results["personal_data_recall"] = pii
    results["seconds"] = round(time.monotonic() - started, 1)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    g = results["gitleaks_true_positives"]
    print(f"gitleaks true positives: {g['caught']}/{g['samples']} caught (recall {g['recall']}), {g['rules_fully_caught']}/{g['rules']} rules fully caught, {len(unread)} rules not extracted")
    if isinstance(results["detect_secrets_plugin_tests"], dict):
        d = results["detect_secrets_plugin_tests"]
        print(f"detect-secrets plugin tests: recall {d['recall']} ({d['tp']}/{d['tp'] + d['fn']}), negatives flagged {d['negatives_flagged_rate']} ({d['fp']}/{d['fp'] + d['tn']})")
    for split, row in docs.items():
        print(f"docs ({split} split): {row['vetoed']}/{row['chunks']} chunks vetoed ({row['veto_rate']}; secrets {row['secret_veto_rate']}) {row['by_reason']}")
    print("phones:", {f: v["recall"] for f, v in pii["phones"].items()}, "ibans:", pii.get("ibans"))
    print(f"{results['seconds']} s -> {args.out}")


if __name__ == "__main__":
    main()
