"""Classes files of your own data, in the forms labelling tools export, each read right or refused.

    .txt   one class per line in index order: `name`, `name R G B`, `id name`, or CVAT's labelmap.txt
           (`name:r,g,b::`); labelme2voc's labels.txt (`__ignore__`, `_background_`, names) too
    .csv   `id,name,r,g,b`, `name,r,g,b`, `id,name`, `name` ... with a header (columns by name) or without
    .json  a list of names or of {"name", "color"/"colour", "id"} objects, {id: name}, {name: [r, g, b]}, or one of
           those under "classes", "labels" or "categories" (COCO's)

A file that fits none of these is refused with one sentence naming it and these forms; it is never read as
something else. `__ignore__` names no class (labelme2voc's marker for the ignore label).
"""
import csv
import json
import re

from utils.errors import UserError
from utils.log import notice

# Looked for in DATA_DIR, in this order; the first one found is used, the others get a notice.
CANDIDATES = ("classes.txt", "labelmap.txt", "labels.txt", "classes.csv", "class_dict.csv", "classes.json",
              "_classes.csv", "train/_classes.csv")  # the last two: Roboflow's, beside the images of each split
FORMATS = ("a .txt with one class per line ('name', 'name R G B', 'id name' or CVAT's 'name:r,g,b::'), a .csv "
           "('id,name,r,g,b', 'name,r,g,b', 'id,name' or 'name', with or without a header) or a .json (a list of "
           "names or of {name, color} objects, or {id: name})")
IGNORE_NAME = "__ignore__"
BACKGROUND_NAMES = ("background", "_background_", "__background__")
NAME_COLUMNS = ("name", "class", "class_name", "classname", "label", "label_name", "category")
ID_COLUMNS = ("id", "index", "idx", "class_id", "label_id", "value", "pixel_value", "trainid")
RGB_COLUMNS = (("r", "red"), ("g", "green"), ("b", "blue"))
COLOUR_COLUMNS = ("color", "colour", "rgb", "hex")


def refuse(path, what):
    raise UserError(f"classes file {path} {what}; give {FORMATS}.")


def read_classes(path):
    """[(name, (r, g, b) or None)] in index order."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"classes file {path} cannot be read ({getattr(e, 'strerror', None) or e}); give a UTF-8 "
                        f"text file.") from None
    suffix = str(path).lower().rsplit(".", 1)[-1] if "." in str(path) else ""
    if suffix == "csv":
        rows = [[cell.strip() for cell in row] for row in csv.reader(text.splitlines()) if any(c.strip() for c in row)]
        classes = from_csv(path, rows)
    elif suffix == "json":
        try:
            classes = from_json(path, json.loads(text))
        except ValueError:
            refuse(path, "is not valid JSON")
    elif suffix in ("txt", "names", "lst", ""):
        classes = from_text(path, text.splitlines())
    else:
        refuse(path, f"has the suffix .{suffix}, which is not a classes format this tool reads")
    return checked(path, [(n, c) for n, c in classes if n != IGNORE_NAME])


def colour_of(path, where, values):
    try:
        colour = tuple(int(v) for v in values)
    except (TypeError, ValueError):
        refuse(path, f"{where} has the colour {values!r}, not three integers")
    if len(colour) != 3 or not all(0 <= v <= 255 for v in colour):
        raise UserError(f"classes file {path} {where} has the colour {colour}, not three values of 0..255; give R G "
                        f"B values of 0..255 (beyond 0..255 no colour exists).")
    return colour


def hex_colour(path, where, text):
    match = re.fullmatch(r"#?([0-9a-fA-F]{6})", str(text).strip())
    if not match:
        return colour_of(path, where, re.split(r"[\s,;]+", str(text).strip(" ()[]")))
    return tuple(int(match.group(1)[i:i + 2], 16) for i in (0, 2, 4))


def by_id(path, pairs):
    """[(id, name, colour)] -> classes in id order; the ids must be 0..n-1, as the masks' values."""
    ids = sorted(i for i, _, _ in pairs)
    if ids != list(range(len(pairs))):
        refuse(path, f"numbers its classes {ids[:6]}{'...' if len(ids) > 6 else ''}, not 0..{len(pairs) - 1} "
                     f"(the class values of the masks)")
    return [(name, colour) for _, name, colour in sorted(pairs, key=lambda p: p[0])]


def from_text(path, lines):
    classes, numbered = [], []
    for n, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue  # CVAT's labelmap.txt begins with a comment
        cvat = re.fullmatch(r"([^:]+):\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*(:.*)?", text)
        plain = re.fullmatch(r"(.+?)\s+(\d+)\s+(\d+)\s+(\d+)", text)
        if cvat or plain:
            m = cvat or plain
            classes.append((m.group(1).strip(), colour_of(path, f"line {n}", m.group(2, 3, 4))))
        elif ":" in text:  # a CVAT line without a colour
            classes.append((text.split(":", 1)[0].strip(), None))
        else:
            classes.append((text, None))
        numbered.append(re.fullmatch(r"(\d+)\s+(\S.*)", text))
        if not classes[-1][0]:
            refuse(path, f"line {n} has no class name")
    if classes and all(numbered) and not any(c for _, c in classes):  # every line `id name`
        return by_id(path, [(int(m.group(1)), m.group(2).strip(), None) for m in numbered])
    return classes


def is_int(text):
    return re.fullmatch(r"\d+", text) is not None


def from_csv(path, rows):
    if not rows:
        refuse(path, "names no class")
    head = [c.lower().replace(" ", "_") for c in rows[0]]
    if not any(is_int(c) for c in rows[0]) and len(rows) > 1 and any(c in NAME_COLUMNS for c in head):
        return csv_columns(path, head, rows[1:])
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        refuse(path, f"has rows of {sorted(widths)} columns")
    width = widths.pop()
    ints = [all(is_int(r[k]) for r in rows) for k in range(width)]
    if width == 1 and not ints[0]:                                     # name
        return [(r[0], None) for r in rows]
    if width == 2 and ints == [True, False]:                           # id,name
        return by_id(path, [(int(r[0]), r[1], None) for r in rows])
    if width == 4 and ints == [False, True, True, True]:               # name,r,g,b
        return [(r[0], colour_of(path, f"row {r}", r[1:])) for r in rows]
    if width == 5 and ints == [True, False, True, True, True]:         # id,name,r,g,b
        return by_id(path, [(int(r[0]), r[1], colour_of(path, f"row {r}", r[2:])) for r in rows])
    if not any(is_int(c) for c in rows[0]):
        refuse(path, f"has the header {','.join(rows[0])} without a name column ({', '.join(NAME_COLUMNS)})")
    refuse(path, f"has rows like {','.join(rows[0])}, which is none of its forms")


def csv_columns(path, head, rows):
    """A CSV with a header: the columns by their names, in any order; other columns are left alone."""
    col = lambda names: next((head.index(c) for c in names if c in head), None)  # noqa: E731
    name, ident, colour = col(NAME_COLUMNS), col(ID_COLUMNS), col(COLOUR_COLUMNS)
    rgb = [col(names) for names in RGB_COLUMNS]
    if any(k is not None for k in rgb) and None in rgb:
        refuse(path, "has some of the columns r, g, b but not all three")
    out = []
    for n, r in enumerate(rows, 2):
        if len(r) != len(head):
            refuse(path, f"row {n} has {len(r)} cells but the header {len(head)}")
        c = (colour_of(path, f"row {n}", [r[k] for k in rgb]) if rgb[0] is not None
             else hex_colour(path, f"row {n}", r[colour]) if colour is not None else None)
        if ident is not None and not is_int(r[ident]):
            refuse(path, f"row {n} has the id {r[ident]!r}, not a number")
        out.append((int(r[ident]) if ident is not None else n, r[name], c))
    return by_id(path, out) if ident is not None else [(nm, c) for _, nm, c in out]


def from_json(path, data):
    if isinstance(data, dict):
        key = next((k for k in ("classes", "labels", "categories") if k in data), None)
        if key is not None and len(data) <= 3:
            return from_json(path, data[key])
        if data and all(is_int(str(k)) for k in data):                 # {id: name} or {id: {name, color}}
            return by_id(path, [(int(k), *entry(path, v, k)) for k, v in data.items()])
        if data and all(isinstance(v, (list, str)) for v in data.values()):  # {name: colour}
            return [(k, colour(path, k, v)) for k, v in data.items()]
        refuse(path, "is a JSON object of none of its forms")
    if isinstance(data, list) and data:
        entries = [entry(path, v, i) for i, v in enumerate(data)]
        ids = [v.get("id") if isinstance(v, dict) else None for v in data]
        if all(isinstance(i, int) for i in ids):
            if sorted(ids) != list(range(len(ids))):  # COCO-style 1..n ids: their order, not their values
                return [e for _, e in sorted(zip(ids, entries), key=lambda p: p[0])]
            return by_id(path, [(i, *e) for i, e in zip(ids, entries)])
        return entries
    refuse(path, "is JSON of none of its forms")


def colour(path, name, value):
    """A JSON colour: [r, g, b] or '#rrggbb'."""
    where = f"class {name!r}"
    return hex_colour(path, where, value) if isinstance(value, str) else colour_of(path, where, value)


def entry(path, value, where):
    """(name, colour or None) of a JSON entry: a name, or an object with a name and maybe a colour."""
    if isinstance(value, str):
        return value, None
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        c = next((value[k] for k in COLOUR_COLUMNS if k in value), None)
        return value["name"], None if c is None else colour(path, value["name"], c)
    refuse(path, f"has the entry {json.dumps(value)[:60]} at {where}, neither a name nor an object with a 'name'")


def checked(path, classes):
    if not classes:
        refuse(path, "names no class")
    names = [n for n, _ in classes]
    twice = next((n for n in names if names.count(n) > 1), None)
    if twice is not None:
        raise UserError(f"classes file {path} names the class {twice!r} twice; give each class once.")
    colours = [c for _, c in classes]
    if any(c is not None for c in colours) and None in colours:
        raise UserError(f"classes file {path} gives colours for some classes but not for {names[colours.index(None)]!r}"
                        f"; give a colour for every class or for none.")
    if len({c for c in colours if c is not None}) < sum(c is not None for c in colours):
        raise UserError(f"classes file {path} gives two classes the same colour; each class needs its own colour.")
    if len(classes) > 255:
        raise UserError(f"classes file {path} names {len(classes)} classes; at most 255 are supported (255 is the "
                        f"ignore label).")
    return classes


def background_class(names):
    """The class left unblended in overlays: one named background (any case, labelme's _background_), else
    index 0 of a two-class (binary) dataset, else None."""
    lowered = [str(n).lower() for n in names]
    found = next((i for i, n in enumerate(lowered) if n in BACKGROUND_NAMES), None)
    return found if found is not None else (0 if len(names) == 2 else None)


def find_classes_file(data_dir, given):
    """The classes file to use: --classes, else the first of CANDIDATES in data_dir. Any other candidate lying
    there gets a notice saying why it is not used."""
    present = [data_dir / n for n in CANDIDATES if (data_dir / n).is_file()]
    chosen = given or (str(present[0]) if present else None)
    for other in present:
        if str(other) != str(chosen):
            why = "--classes names another file" if given else f"{chosen} comes first"
            notice(f"{other} is not read ({why}).")
    return chosen
