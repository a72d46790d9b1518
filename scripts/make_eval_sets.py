"""Write the bundled evaluation sets, `cream_engine/data/eval/{mc,arith}.jsonl`.

    python scripts/make_eval_sets.py [--out DIR]

Deterministic: a fixed seed and no dependence on hash order, so two runs write identical bytes
(a test checks the shipped files against a fresh run).

- mc.jsonl, Hugging Face ARC layout: questions whose answer code computes (arithmetic, unit
  conversions, calendar, letters, order, primes, shapes, ...) plus hand-written questions whose
  answers are beyond doubt. Four distinct options; the answer's position is drawn from a
  seeded shuffle of an equal number of A, B, C and D.
- arith.jsonl, GSM8K layout: two- and three-step word problems from templates, the reasoning
  and the final "#### n" computed by code (non-negative integers, some of 1000 or more).

Standard library only.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable
from pathlib import Path

SEED = 20240611
PER_CATEGORY = 10
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "cream_engine" / "data" / "eval"

# -- multiple choice: computed -----------------------------------------------------------------

DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
SHAPES = {3: "triangle", 4: "square", 5: "pentagon", 6: "hexagon", 7: "heptagon",
          8: "octagon", 9: "nonagon", 10: "decagon"}
UNITS = [("minutes", "hours", 60), ("seconds", "minutes", 60), ("hours", "days", 24),
         ("days", "weeks", 7), ("months", "years", 12), ("centimeters", "meters", 100),
         ("millimeters", "centimeters", 10), ("grams", "kilograms", 1000),
         ("meters", "kilometers", 1000), ("milliliters", "liters", 1000)]
WORDS = ["apple", "banana", "cherry", "elephant", "giraffe", "mountain", "river", "pencil",
         "window", "garden", "butterfly", "library", "rainbow", "bicycle", "kitchen", "planet",
         "orange", "teacher", "hospital", "umbrella", "dinosaur", "chocolate", "volcano",
         "blanket", "penguin", "calendar", "tomato", "engine", "bottle", "island", "marble",
         "ladder", "forest", "castle", "dolphin", "lantern", "pepper", "summer", "yellow",
         "puzzle", "tunnel", "basket", "candle", "feather", "harbor", "jungle", "kettle"]


def distinct(rng: random.Random, answer: int, candidates: list[int]) -> list[int]:
    """Three distractors drawn from `candidates`: distinct, non-negative, not the answer."""
    pool = sorted({c for c in candidates if c >= 0 and c != answer})
    return rng.sample(pool, 3)


def listed(rng: random.Random, values: list[str]) -> str:
    """The values as "a, b, c or d", shuffled (independently of the options' order)."""
    shown = rng.sample(values, len(values))
    return ", ".join(shown[:-1]) + " or " + shown[-1]


def q_arithmetic(rng: random.Random) -> tuple[str, str, list[str]]:
    op = rng.choice("+-×÷")
    if op == "+":
        a, b = rng.randint(12, 499), rng.randint(12, 499)
        answer = a + b
        near = [answer + d for d in (-10, -2, -1, 1, 2, 10)]
    elif op == "-":
        a, b = rng.randint(50, 999), rng.randint(11, 49)
        answer = a - b
        near = [answer + d for d in (-10, -2, -1, 1, 2, 10)] + [a + b]
    elif op == "×":
        a, b = rng.randint(3, 19), rng.randint(3, 25)
        answer = a * b
        near = [answer + a, answer - a, answer + b, answer - b, answer + 1, answer - 1, a + b]
    else:
        b, answer = rng.randint(2, 12), rng.randint(3, 25)
        a = b * answer
        near = [answer + 1, answer - 1, answer + 2, answer - 2, answer + 10]
    return f"What is {a} {op} {b}?", str(answer), [str(w) for w in distinct(rng, answer, near)]


def q_compare(rng: random.Random) -> tuple[str, str, list[str]]:
    values = [str(v) for v in rng.sample(range(100, 10000), 4)]
    largest = rng.random() < 0.5
    answer = max(values, key=int) if largest else min(values, key=int)
    word = "largest" if largest else "smallest"
    return (f"Which of the numbers {listed(rng, values)} is the {word}?", answer,
            [v for v in values if v != answer])


def q_units(rng: random.Random) -> tuple[str, str, list[str]]:
    small, many, factor = rng.choice(UNITS)
    n = rng.randint(2, 9)
    answer = n * factor
    wrong = distinct(rng, answer, [answer + factor, answer - factor, n + factor, answer * 10,
                                   answer + n])
    return f"How many {small} are in {n} {many}?", str(answer), [str(w) for w in wrong]


def q_weekday(rng: random.Random) -> tuple[str, str, list[str]]:
    start, n = rng.randrange(7), rng.randint(1, 20)
    answer = DAYS[(start + n) % 7]
    when = "day" if n == 1 else "days"
    return (f"What day of the week comes {n} {when} after {DAYS[start]}?", answer,
            rng.sample([d for d in DAYS if d != answer], 3))


def q_month(rng: random.Random) -> tuple[str, str, list[str]]:
    start, n = rng.randrange(12), rng.randint(1, 11)
    answer = MONTHS[(start + n) % 12]
    when = "month" if n == 1 else "months"
    return (f"Which month comes {n} {when} after {MONTHS[start]}?", answer,
            rng.sample([m for m in MONTHS if m != answer], 3))


def q_letters(rng: random.Random) -> tuple[str, str, list[str]]:
    word = rng.choice(WORDS)
    if rng.random() < 0.5:
        answer = len(word)
        question = f"How many letters are in the word \"{word}\"?"
    else:
        letter = rng.choice(sorted(set(word)))
        answer = word.count(letter)
        question = f"How many times does the letter \"{letter}\" appear in the word \"{word}\"?"
    wrong = distinct(rng, answer, [n for n in range(answer - 3, answer + 4) if n > 0])
    return question, str(answer), [str(w) for w in wrong]


def q_alphabetical(rng: random.Random) -> tuple[str, str, list[str]]:
    words = rng.sample(WORDS, 4)
    first = rng.random() < 0.5
    answer = min(words) if first else max(words)
    where = "first" if first else "last"
    return (f"Which of the words {listed(rng, words)} comes {where} in alphabetical order?",
            answer, [w for w in words if w != answer])


def is_prime(n: int) -> bool:
    return n > 1 and all(n % d for d in range(2, int(n ** 0.5) + 1))


def q_prime(rng: random.Random) -> tuple[str, str, list[str]]:
    answer = str(rng.choice([n for n in range(11, 100) if is_prime(n)]))
    odd_composites = [n for n in range(9, 100, 2) if not is_prime(n)]
    wrong = [str(n) for n in rng.sample(odd_composites, 3)]
    return (f"Which of the numbers {listed(rng, [answer, *wrong])} is a prime number?", answer,
            wrong)


def q_parity(rng: random.Random) -> tuple[str, str, list[str]]:
    even = rng.random() < 0.5
    wanted = [n for n in range(11, 200) if (n % 2 == 0) == even]
    others = [n for n in range(11, 200) if (n % 2 == 0) != even]
    word = "even" if even else "odd"
    answer, wrong = str(rng.choice(wanted)), [str(n) for n in rng.sample(others, 3)]
    return (f"Which of the numbers {listed(rng, [answer, *wrong])} is {word}?", answer, wrong)


def q_shapes(rng: random.Random) -> tuple[str, str, list[str]]:
    sides = rng.choice(sorted(SHAPES))
    if rng.random() < 0.5:
        wrong = rng.sample([s for s in SHAPES if s != sides], 3)
        article = "an" if SHAPES[sides][0] in "aeiou" else "a"
        return (f"How many sides does {article} {SHAPES[sides]} have?", str(sides),
                [str(s) for s in wrong])
    wrong = rng.sample([SHAPES[s] for s in SHAPES if s != sides], 3)
    return f"Which of these shapes has exactly {sides} sides?", SHAPES[sides], wrong


def q_sequence(rng: random.Random) -> tuple[str, str, list[str]]:
    start, step = rng.randint(1, 30), rng.randint(2, 12)
    terms = [start + step * k for k in range(4)]
    answer = start + step * 4
    wrong = distinct(rng, answer, [w for w in (answer + step, answer - 1, answer + 1,
                                               answer + 2 * step, answer - 2) if w not in terms])
    shown = ", ".join(map(str, terms))
    return (f"What number comes next in the sequence {shown}, ...?", str(answer),
            [str(w) for w in wrong])


def clock(minutes: int) -> str:
    """Minutes after midnight -> "2:05 PM"."""
    h, m = divmod(minutes, 60)
    return f"{(h - 1) % 12 + 1}:{m:02d} {'AM' if h < 12 else 'PM'}"


def q_clock(rng: random.Random) -> tuple[str, str, list[str]]:
    start = rng.randrange(8 * 60, 16 * 60, 5)
    length = rng.randrange(35, 200, 5)
    answer = start + length
    hours, mins = divmod(length, 60)
    duration = " and ".join(part for part in (
        f"{hours} hour{'s' if hours != 1 else ''}" if hours else "",
        f"{mins} minutes" if mins else "") if part)
    wrong = rng.sample([answer + 60, answer - 60, answer + 10, answer - 10, answer + 30,
                        answer - 30], 3)
    return (f"A film starts at {clock(start)} and lasts {duration}. At what time does it end?",
            clock(answer), [clock(w) for w in wrong])


COMPUTED: dict[str, Callable[[random.Random], tuple[str, str, list[str]]]] = {
    "arithmetic": q_arithmetic, "compare": q_compare, "units": q_units, "weekday": q_weekday,
    "month": q_month, "letters": q_letters, "alphabetical": q_alphabetical, "prime": q_prime,
    "parity": q_parity, "shapes": q_shapes, "sequence": q_sequence, "clock": q_clock}

# -- multiple choice: written by hand (answer first) ---------------------------------------

KNOWLEDGE = [
    ("Which planet is closest to the Sun?", "Mercury", "Venus", "Earth", "Mars"),
    ("Which planet is known as the Red Planet?", "Mars", "Jupiter", "Venus", "Saturn"),
    ("Which is the largest planet in our solar system?", "Jupiter", "Earth", "Mars",
     "Mercury"),
    ("Which star is closest to the Earth?", "The Sun", "Sirius", "Polaris", "Betelgeuse"),
    ("At sea level, at what temperature in degrees Celsius does pure water boil?", "100", "50",
     "0", "212"),
    ("At sea level, at what temperature in degrees Celsius does pure water freeze?", "0", "100",
     "32", "-20"),
    ("Which gas do plants take in from the air to make food by photosynthesis?",
     "Carbon dioxide", "Helium", "Neon", "Hydrogen"),
    ("What is the chemical formula of water?", "H2O", "CO2", "NaCl", "O3"),
    ("What is the chemical symbol for gold?", "Au", "Ag", "Fe", "Pb"),
    ("Which gas makes up most of the Earth's atmosphere?", "Nitrogen", "Oxygen",
     "Carbon dioxide", "Helium"),
    ("Which metal is a liquid at room temperature?", "Mercury", "Iron", "Copper", "Aluminum"),
    ("How many legs does a spider have?", "8", "6", "4", "10"),
    ("How many legs does an insect have?", "6", "8", "4", "12"),
    ("Which organ pumps blood around the human body?", "The heart", "The lungs", "The liver",
     "The stomach"),
    ("Which blood vessels carry blood away from the heart?", "Arteries", "Veins", "Nerves",
     "Tendons"),
    ("Which of these animals is a mammal?", "Dolphin", "Shark", "Trout", "Octopus"),
    ("Which of these animals is a reptile?", "Crocodile", "Frog", "Salmon", "Eagle"),
    ("Which of these animals is the largest?", "Blue whale", "Elephant", "Giraffe", "Horse"),
    ("What is a young frog called?", "Tadpole", "Foal", "Puppy", "Lamb"),
    ("What do we call an animal that eats only plants?", "Herbivore", "Carnivore",
     "Omnivore", "Predator"),
    ("Which of these animals lays eggs?", "Chicken", "Cow", "Dog", "Horse"),
    ("What sweet food do bees make from nectar?", "Honey", "Jam", "Chocolate", "Maple syrup"),
    ("Which part of a plant takes in water from the soil?", "The roots", "The flowers",
     "The petals", "The seeds"),
    ("Which of these is a fruit?", "Apple", "Carrot", "Potato", "Onion"),
    ("What is frozen water called?", "Ice", "Steam", "Fog", "Dew"),
    ("Which state of matter keeps its own shape without a container?", "Solid", "Liquid",
     "Gas", "Vapor"),
    ("Which force pulls objects toward the ground?", "Gravity", "Magnetism", "Friction",
     "Static electricity"),
    ("Which instrument is used to measure temperature?", "Thermometer", "Barometer",
     "Compass", "Stopwatch"),
    ("In which direction does the Sun rise?", "East", "West", "North", "South"),
    ("What color do you get by mixing blue and yellow paint?", "Green", "Purple", "Orange",
     "Red"),
    ("Which sense do we use our ears for?", "Hearing", "Sight", "Smell", "Taste"),
    ("Which of these is a renewable source of energy?", "Wind", "Coal", "Oil", "Natural gas"),
    ("Which of these materials is the hardest?", "Diamond", "Chalk", "Gold", "Wood"),
    ("What is the capital of France?", "Paris", "London", "Berlin", "Madrid"),
    ("What is the capital of Japan?", "Tokyo", "Beijing", "Seoul", "Osaka"),
    ("What is the capital of Italy?", "Rome", "Milan", "Venice", "Naples"),
    ("On which continent is Kenya?", "Africa", "Asia", "Europe", "South America"),
    ("What is the tallest mountain above sea level?", "Mount Everest", "K2", "Kilimanjaro",
     "Mont Blanc"),
    ("Who wrote the play \"Romeo and Juliet\"?", "William Shakespeare", "Charles Dickens",
     "Jane Austen", "Mark Twain"),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci", "Michelangelo", "Vincent van Gogh",
     "Pablo Picasso"),
]


def make_mc(rng: random.Random) -> list[dict]:
    raw: list[tuple[str, str, str, list[str]]] = []  # category, question, answer, wrong
    seen: set[str] = set()
    for category, make in COMPUTED.items():
        made = 0
        while made < PER_CATEGORY:
            question, answer, wrong = make(rng)
            if question in seen:
                continue
            assert len({answer, *wrong}) == 4, (question, answer, wrong)
            seen.add(question)
            raw.append((category, question, answer, wrong))
            made += 1
    for question, answer, *wrong in KNOWLEDGE:
        assert question not in seen and len({answer, *wrong}) == 4, question
        seen.add(question)
        raw.append(("knowledge", question, answer, list(wrong)))
    rng.shuffle(raw)  # a prefix (`limit`) is then a mix of categories
    positions = [n % 4 for n in range(len(raw))]
    rng.shuffle(positions)
    rows = []
    for n, ((category, question, answer, wrong), pos) in enumerate(zip(raw, positions), 1):
        options = rng.sample(wrong, 3)
        options.insert(pos, answer)
        rows.append({"id": f"mc-{n:04d}", "category": category, "question": question,
                     "choices": {"text": options, "label": ["A", "B", "C", "D"]},
                     "answerKey": "ABCD"[pos]})
    return rows


# -- arithmetic word problems (GSM8K layout) ------------------------------------------------

NAMES = ["Maya", "Liam", "Ava", "Noah", "Sofia", "Ethan", "Zara", "Omar", "Lena", "Ravi",
         "Chloe", "Mateo", "Priya", "Jonas", "Aisha", "Owen"]
Problem = tuple[str, list[str], int]


def p_shopping(rng: random.Random) -> Problem:
    name, a, p, b, q = rng.choice(NAMES), rng.randint(2, 9), rng.randint(2, 15), \
        rng.randint(2, 9), rng.randint(1, 6)
    x, y = a * p, b * q
    return ((f"{name} buys {a} notebooks that cost ${p} each and {b} pens that cost ${q} each. "
             f"How many dollars does {name} spend in all?"),
            [f"The notebooks cost {a} * {p} = {x} dollars.",
             f"The pens cost {b} * {q} = {y} dollars.",
             f"In all {name} spends {x} + {y} = {x + y} dollars."], x + y)


def p_change(rng: random.Random) -> Problem:
    name, a, p = rng.choice(NAMES), rng.randint(2, 8), rng.randint(3, 25)
    cost = a * p
    money = cost + rng.randint(1, 60)
    return ((f"{name} has ${money} and buys {a} concert tickets that cost ${p} each. How many "
             f"dollars does {name} have left?"),
            [f"The tickets cost {a} * {p} = {cost} dollars.",
             f"{name} has {money} - {cost} = {money - cost} dollars left."], money - cost)


def p_sharing(rng: random.Random) -> Problem:
    while True:
        batches, per_batch, boxes = rng.randint(2, 9), rng.randint(6, 36), rng.randint(2, 12)
        if batches * per_batch % boxes == 0:
            break
    total = batches * per_batch
    return ((f"A baker makes {batches} batches of {per_batch} cookies and shares them equally "
             f"among {boxes} boxes. How many cookies go in each box?"),
            [f"The baker makes {batches} * {per_batch} = {total} cookies.",
             f"Each box gets {total} / {boxes} = {total // boxes} cookies."], total // boxes)


def p_distance(rng: random.Random) -> Problem:
    s1, h1, s2, h2 = rng.randint(40, 90), rng.randint(2, 9), rng.randint(40, 90), \
        rng.randint(2, 9)
    d1, d2 = s1 * h1, s2 * h2
    return ((f"A train travels at {s1} miles per hour for {h1} hours, then at {s2} miles per "
             f"hour for {h2} hours. How many miles does it travel in all?"),
            [f"First it travels {s1} * {h1} = {d1} miles.",
             f"Then it travels {s2} * {h2} = {d2} miles.",
             f"In all it travels {d1} + {d2} = {d1 + d2} miles."], d1 + d2)


def p_wages(rng: random.Random) -> Problem:
    name, wage, hours, days = rng.choice(NAMES), rng.randint(12, 30), rng.randint(4, 9), \
        rng.randint(5, 12)
    daily = wage * hours
    return ((f"{name} earns ${wage} an hour and works {hours} hours a day. How many dollars does "
             f"{name} earn in {days} days?"),
            [f"Each day {name} earns {wage} * {hours} = {daily} dollars.",
             f"In {days} days {name} earns {daily} * {days} = {daily * days} dollars."],
            daily * days)


def p_practice(rng: random.Random) -> Problem:
    while True:
        name, minutes, weeks = rng.choice(NAMES), rng.randrange(15, 95, 5), rng.randint(2, 8)
        if weeks * 7 * minutes % 60 == 0:
            break
    days, total = weeks * 7, weeks * 7 * minutes
    return ((f"{name} practices the piano for {minutes} minutes every day for {weeks} weeks. "
             "How many hours is that in all?"),
            [f"{weeks} weeks is {weeks} * 7 = {days} days.",
             f"That is {days} * {minutes} = {total} minutes.",
             f"In hours that is {total} / 60 = {total // 60} hours."], total // 60)


def p_savings(rng: random.Random) -> Problem:
    name, per_week, weeks = rng.choice(NAMES), rng.randint(5, 40), rng.randint(4, 20)
    saved = per_week * weeks
    spent = rng.randint(1, saved - 1)
    return ((f"{name} saves ${per_week} every week. After {weeks} weeks, {name} spends ${spent} on "
             f"a bike. How many dollars does {name} have left?"),
            [f"{name} saves {per_week} * {weeks} = {saved} dollars.",
             f"After the bike {name} has {saved} - {spent} = {saved - spent} dollars."],
            saved - spent)


def p_orchard(rng: random.Random) -> Problem:
    rows, per_row = rng.randint(4, 30), rng.randint(6, 40)
    planted = rows * per_row
    died = rng.randint(1, min(30, planted - 1))
    return ((f"A farmer plants {rows} rows of {per_row} apple trees. {died} of the trees die. "
             "How many trees are still alive?"),
            [f"The farmer plants {rows} * {per_row} = {planted} trees.",
             f"{planted} - {died} = {planted - died} trees are still alive."], planted - died)


def p_reading(rng: random.Random) -> Problem:
    name, per_day, days = rng.choice(NAMES), rng.randint(8, 40), rng.randint(3, 12)
    read = per_day * days
    pages = read + rng.randint(5, 200)
    return ((f"A book has {pages} pages. {name} reads {per_day} pages a day for {days} days. How "
             "many pages are left to read?"),
            [f"{name} reads {per_day} * {days} = {read} pages.",
             f"There are {pages} - {read} = {pages - read} pages left."], pages - read)


def p_marbles(rng: random.Random) -> Problem:
    total = 4 * rng.randint(5, 60)
    red = total // 4
    blue = total - red
    taken = rng.randint(1, blue - 1)
    return ((f"A jar holds {total} marbles. One quarter of them are red and the rest are blue. "
             f"If {taken} blue marbles are taken out, how many blue marbles are left?"),
            [f"There are {total} / 4 = {red} red marbles.",
             f"So there are {total} - {red} = {blue} blue marbles.",
             f"After {taken} are taken out, {blue} - {taken} = {blue - taken} are left."],
            blue - taken)


def p_factory(rng: random.Random) -> Problem:
    per_day, days, extra = rng.randint(60, 480), rng.randint(3, 9), rng.randint(10, 150)
    made = per_day * days
    return ((f"A factory makes {per_day} toys each day for {days} days, and an extra {extra} "
             "toys on the last day. How many toys does it make in all?"),
            [f"On ordinary days it makes {per_day} * {days} = {made} toys.",
             f"With the extra toys that is {made} + {extra} = {made + extra} toys."],
            made + extra)


def p_sale(rng: random.Random) -> Problem:
    price, percent = 20 * rng.randint(2, 30), rng.choice([10, 20, 25, 50])
    off = price * percent // 100
    return ((f"A jacket costs ${price}. It is on sale for {percent}% off. How many dollars does "
             "the jacket cost on sale?"),
            [f"The discount is {price} * {percent} / 100 = {off} dollars.",
             f"The sale price is {price} - {off} = {price - off} dollars."], price - off)


TEMPLATES: dict[str, Callable[[random.Random], Problem]] = {
    "shopping": p_shopping, "change": p_change, "sharing": p_sharing,
    "distance": p_distance, "wages": p_wages, "practice": p_practice, "savings": p_savings,
    "orchard": p_orchard, "reading": p_reading, "marbles": p_marbles, "factory": p_factory,
    "sale": p_sale}
PER_TEMPLATE = 11


def make_arith(rng: random.Random) -> list[dict]:
    raw: list[tuple[str, str, list[str], int]] = []
    seen: set[str] = set()
    for category, make in TEMPLATES.items():
        made = 0
        while made < PER_TEMPLATE:
            question, steps, answer = make(rng)
            if question in seen:
                continue
            assert answer >= 0, question
            seen.add(question)
            raw.append((category, question, steps, answer))
            made += 1
    rng.shuffle(raw)
    return [{"id": f"arith-{n:04d}", "category": category, "question": question,
             "answer": "\n".join(steps) + f"\n#### {answer}"}
            for n, (category, question, steps, answer) in enumerate(raw, start=1)]


# -- writing ----------------------------------------------------------------------------------


def write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    path.write_bytes(text.encode("utf-8"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)
    mc, arith = make_mc(random.Random(SEED)), make_arith(random.Random(SEED + 1))
    write(args.out / "mc.jsonl", mc)
    write(args.out / "arith.jsonl", arith)
    print(f"wrote {len(mc)} items to {args.out / 'mc.jsonl'} and {len(arith)} to "
          f"{args.out / 'arith.jsonl'}")


if __name__ == "__main__":
    main()
