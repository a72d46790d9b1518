"""Arithmetic word problems for the seed SFT set (read by scripts/make_seed_set.py).

Each template draws its numbers from a seeded `random.Random` and returns the question, the
reasoning steps (each holding one "a × b = c" equation that make_seed_set.py checks), the answer
computed here and a closing sentence. Every step's numbers come from the question or from an
earlier step, so a reader can follow the reply from the problem to its answer.

Standard library only.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from decimal import Decimal

NAMES = ["Amara", "Bruno", "Celia", "Dev", "Elif", "Finn", "Gia", "Hugo", "Ivy", "Jamal",
         "Kira", "Luca", "Mina", "Nico", "Olga", "Pedro"]

Problem = tuple[str, list[str], Decimal, str]  # question, steps, answer, closing sentence


def d(x: int | str) -> Decimal:
    return Decimal(x)


def cents(n: int) -> Decimal:
    """An amount of money given in cents, written with two decimals (150 -> 1.50)."""
    return Decimal(n).scaleb(-2)


def p_add_two(rng: random.Random) -> Problem:
    n, a, b = rng.choice(NAMES), rng.randint(120, 899), rng.randint(120, 899)
    question, unit = rng.choice([
        ((f"{n} collected {a} shells on Saturday and {b} shells on Sunday. How many shells did "
          f"{n} collect over the weekend?"), "shells"),
        ((f"A school library received {a} new books in the autumn and {b} in the spring. How "
          "many new books did it receive in all?"), "new books"),
        ((f"One field on a farm has {a} sheep and another has {b} sheep. How many sheep are "
          "there altogether?"), "sheep"),
        ((f"{n} walked {a} steps before lunch and {b} steps after lunch. How many steps is that "
          "in total?"), "steps")])
    return question, [f"To find the total, add the two amounts: {a} + {b} = {a + b}."], \
        d(a + b), f"So there are {a + b} {unit} in all."


def p_add_three(rng: random.Random) -> Problem:
    a, b, c = rng.randint(15, 95), rng.randint(15, 95), rng.randint(15, 95)
    question, what = rng.choice([
        ((f"A bakery sold {a} muffins on Monday, {b} on Tuesday and {c} on Wednesday. How many "
          "muffins did it sell over the three days?"), "muffins"),
        ((f"A cyclist rode {a} kilometers on the first day of a tour, {b} on the second and {c} "
          "on the third. How many kilometers did she ride in all?"), "kilometers"),
        ((f"Three classes collected cans for a food drive: {a}, {b} and {c} cans. How many cans "
          "did they collect together?"), "cans")])
    return question, [f"Add the first two amounts: {a} + {b} = {a + b}.",
                      f"Then add the third: {a + b} + {c} = {a + b + c}."], \
        d(a + b + c), f"The total is {a + b + c} {what}."


def p_subtract_left(rng: random.Random) -> Problem:
    a = rng.randint(150, 950)
    b = rng.randint(20, a - 10)
    question, what = rng.choice([
        ((f"A parking garage has {a} spaces, and {b} cars are parked in it. How many spaces are "
          "empty?"), "empty spaces"),
        ((f"A water tank holds {a} liters. After {b} liters are used, how many liters are left "
          "in the tank?"), "liters left"),
        ((f"A theater printed {a} programs for a show and handed out {b} of them. How many "
          "programs are left?"), "programs left")])
    return question, [f"Take the used part away from the whole: {a} - {b} = {a - b}."], \
        d(a - b), f"There are {a - b} {what}."


def p_subtract_compare(rng: random.Random) -> Problem:
    n1, n2 = rng.sample(NAMES, 2)
    a = rng.randint(200, 990)
    b = rng.randint(100, a - 5)
    question = rng.choice([
        (f"{n1} scored {a} points in a video game and {n2} scored {b}. How many more points did "
         f"{n1} score than {n2}?"),
        (f"A radio tower is {a} feet tall and an office building nearby is {b} feet tall. How "
         "much taller is the tower, in feet?")])
    return question, [(f"The difference is the larger amount minus the smaller one: "
                       f"{a} - {b} = {a - b}.")], d(a - b), f"The difference is {a - b}."


def p_multiply(rng: random.Random) -> Problem:
    r, s = rng.randint(6, 29), rng.randint(11, 48)
    question, what = rng.choice([
        (f"A theater has {r} rows with {s} seats in each row. How many seats does it have?",
         "seats"),
        ((f"Each of the {r} teams in a tournament has {s} players. How many players are there "
          "in all?"), "players"),
        (f"A printer prints {s} pages a minute. How many pages does it print in {r} minutes?",
         "pages")])
    return question, [f"There are {r} groups of {s}, so multiply: {r} × {s} = {r * s}."], \
        d(r * s), f"That makes {r * s} {what}."


def p_multiply_subtract(rng: random.Random) -> Problem:
    t, m = rng.randint(3, 12), rng.randint(8, 24)
    k = rng.randint(5, t * m - 3)
    question = rng.choice([
        (f"A bakery bakes {t} trays of {m} bread rolls and sells {k} of the rolls. How many "
         "rolls are left?"),
        (f"A teacher buys {t} packs of {m} pencils and hands out {k} pencils. How many pencils "
         "does she have left?")])
    return question, [f"First find how many there were: {t} × {m} = {t * m}.",
                      f"Then take away {k}: {t * m} - {k} = {t * m - k}."], \
        d(t * m - k), f"{t * m - k} are left."


def p_divide_add(rng: random.Random) -> Problem:
    k, q, e = rng.randint(3, 9), rng.randint(4, 16), rng.randint(2, 9)
    a = k * q
    n = rng.choice(NAMES)
    question = rng.choice([
        (f"{n} shares {a} stickers equally among {k} friends. Later each friend gets {e} more "
         "stickers. How many stickers does each friend have now?"),
        (f"A coach splits {a} players into {k} equal teams. Then {e} new players join each team. "
         "How many players are on each team now?")])
    return question, [f"Share equally: {a} ÷ {k} = {q} each.",
                      f"Add the {e} extra: {q} + {e} = {q + e}."], d(q + e), \
        f"Each one now has {q + e}."


def p_multiply_add(rng: random.Random) -> Problem:
    k, c, r = rng.randint(4, 15), rng.choice([6, 10, 12]), rng.randint(1, 5)
    question = rng.choice([
        (f"A farmer fills {k} cartons with {c} eggs each and has {r} eggs left over. How many "
         "eggs did she have to start with?"),
        (f"A florist makes {k} bunches of {c} roses and has {r} roses left over. How many roses "
         "did the florist start with?")])
    return question, [f"The full ones hold {k} × {c} = {k * c}.",
                      f"Add the ones left over: {k * c} + {r} = {k * c + r}."], \
        d(k * c + r), f"There were {k * c + r} to start with."


def p_money_total(rng: random.Random) -> Problem:
    n, a = rng.choice(NAMES), rng.randint(2, 9)
    p, b = cents(rng.randrange(25, 96, 5)), cents(rng.randrange(150, 496, 5))
    items, extra = rng.choice([("apples", "a loaf of bread"), ("bus tickets", "a sandwich"),
                               ("postcards", "a pen")])
    cost = a * p
    return ((f"{n} buys {a} {items} at ${p} each and {extra} for ${b}. How many dollars does {n} "
             "spend?"),
            [f"The {items} cost {a} × {p} = {cost} dollars.",
             f"Adding {extra}: {cost} + {b} = {cost + b} dollars."],
            cost + b, f"{n} spends ${cost + b}.")


def p_money_change(rng: random.Random) -> Problem:
    n, a = rng.choice(NAMES), rng.randint(2, 6)
    p = cents(rng.randrange(250, 900, 50))
    bill = next(b for b in (20, 50, 100) if b > a * p)
    cost = a * p
    return ((f"{n} pays for {a} sandwiches that cost ${p} each with a ${bill} bill. How much "
             f"change, in dollars, should {n} get back?"),
            [f"The sandwiches cost {a} × {p} = {cost} dollars.",
             f"The change is {bill} - {cost} = {bill - cost} dollars."],
            bill - cost, f"{n} should get ${bill - cost} back.")


def p_money_weeks(rng: random.Random) -> Problem:
    n, w, k = rng.choice(NAMES), rng.randint(6, 25), rng.randint(5, 16)
    thing = rng.choice(["a bike", "a guitar", "a pair of skates"])
    return ((f"{n} wants to buy {thing} that costs ${w * k} and saves ${w} every week. How many "
             "weeks will it take to save exactly enough?"),
            [f"Divide the price by the weekly savings: {w * k} ÷ {w} = {k}."],
            d(k), f"It will take {k} weeks.")


def clock(h: int, m: int) -> str:
    return f"{h}:{m:02d}"


def p_time_interval(rng: random.Random) -> Problem:
    h1, m1 = rng.randint(6, 9), rng.randrange(5, 56, 5)
    h2, m2 = h1 + rng.randint(1, 3), rng.randrange(5, 56, 5)
    what = rng.choice(["A train leaves", "A ferry departs", "A tour bus sets off"])
    question = (f"{what} at {clock(h1, m1)} in the morning and arrives at {clock(h2, m2)} the "
                "same morning. How many minutes does the trip take?")
    first = 60 - m1
    steps = [(f"An hour has 60 minutes, so from {clock(h1, m1)} to {clock(h1 + 1, 0)} is "
              f"60 - {m1} = {first} minutes.")]
    parts = [first]
    if h2 - h1 > 1:
        k = h2 - h1 - 1
        steps.append(f"From {clock(h1 + 1, 0)} to {clock(h2, 0)} is {k} "
                     f"{'hour' if k == 1 else 'hours'}, which is {k} × 60 = {k * 60} minutes.")
        parts.append(k * 60)
    steps.append(f"From {clock(h2, 0)} to {clock(h2, m2)} is {m2} more minutes.")
    parts.append(m2)
    total = sum(parts)
    steps.append(f"In all: {' + '.join(map(str, parts))} = {total} minutes.")
    return question, steps, d(total), f"The trip takes {total} minutes."


def p_time_total(rng: random.Random) -> Problem:
    h, m, w = rng.randint(1, 3), rng.randrange(10, 56, 5), rng.randint(6, 25)
    ride = rng.choice(["bus ride", "boat trip", "train ride"])
    question = (f"A {ride} takes {h} {'hour' if h == 1 else 'hours'} and {m} minutes, and the "
                f"walk afterwards takes {w} minutes. How many minutes does the whole journey "
                "take?")
    return question, [f"Each hour is 60 minutes, so {h} × 60 = {h * 60} minutes.",
                      f"The {ride} is {h * 60} + {m} = {h * 60 + m} minutes.",
                      f"With the walk: {h * 60 + m} + {w} = {h * 60 + m + w} minutes."], \
        d(h * 60 + m + w), f"The journey takes {h * 60 + m + w} minutes."


def p_time_week(rng: random.Random) -> Problem:
    n, a, b = rng.choice(NAMES), rng.randrange(15, 50, 5), rng.randrange(30, 95, 5)
    hobby = rng.choice(["the violin", "chess", "drawing"])
    return ((f"{n} practices {hobby} for {a} minutes on each weekday and {b} minutes on each "
             f"weekend day. How many minutes does {n} practice in one week?"),
            ["A week has 5 weekdays and 2 weekend days.",
             f"Weekdays: 5 × {a} = {5 * a} minutes.",
             f"Weekend: 2 × {b} = {2 * b} minutes.",
             f"In all: {5 * a} + {2 * b} = {5 * a + 2 * b} minutes."],
            d(5 * a + 2 * b), f"{n} practices {5 * a + 2 * b} minutes a week.")


# category -> (template, how many)
ARITHMETIC: dict[str, list[tuple[Callable[[random.Random], Problem], int]]] = {
    "addition": [(p_add_two, 4), (p_add_three, 4)],
    "subtraction": [(p_subtract_left, 5), (p_subtract_compare, 4)],
    "multiplication": [(p_multiply, 5)],
    "two-step": [(p_multiply_subtract, 5), (p_divide_add, 4), (p_multiply_add, 4)],
    "money": [(p_money_total, 5), (p_money_change, 4), (p_money_weeks, 4)],
    "time": [(p_time_interval, 4), (p_time_total, 4), (p_time_week, 4)],
}
