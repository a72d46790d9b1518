"""Multiple-choice questions for the seed SFT set (read by scripts/make_seed_set.py).

Hand-written science facts and everyday reasoning, as (question, correct option, three wrong
options, a short explanation), and seeded generators of simple logic questions. The facts were
chosen away from the evaluation set's knowledge questions (`cream_engine/data/eval/mc.jsonl`):
make_seed_set.py checks that no question overlaps them.

Standard library only.
"""

from __future__ import annotations

import random

Question = tuple[str, str, str, str, str, str]  # question, correct, wrong x3, explanation

SCIENCE: list[Question] = [
    ("Which planet is famous for its large, bright rings?",
     "Saturn", "Mars", "Mercury", "Venus",
     ("Saturn's rings of ice and rock are the largest and brightest in the solar system. Mars, "
      "Mercury and Venus have no rings.")),
    ("About how many days does the Earth take to travel once around the Sun?",
     "365", "30", "7", "24",
     ("One trip around the Sun is one year, which is about 365 days. A month is about 30 days, "
      "a week is 7 days, and a day has 24 hours.")),
    ("What do we call animals that are mainly active at night?",
     "Nocturnal", "Diurnal", "Aquatic", "Migratory",
     ("Nocturnal animals, such as owls and bats, rest by day and are active at night. Diurnal "
      "animals are active by day, aquatic ones live in water, and migratory ones travel with "
      "the seasons.")),
    ("Which of these objects gives off its own light?",
     "A lit candle", "A mirror", "The Moon", "A window",
     ("A candle flame makes light by burning. A mirror and a window only reflect or let through "
      "light from elsewhere, and the Moon shines by reflecting sunlight.")),
    ("Which of these materials conducts electricity best?",
     "Copper", "Rubber", "Wood", "Glass",
     ("Metals such as copper let electric current flow easily, which is why wires are made of "
      "it. Rubber, wood and glass are insulators.")),
    ("Which of these objects would a magnet pick up?",
     "An iron nail", "A plastic spoon", "A wooden block", "A glass marble",
     "Magnets attract iron and a few other metals. Plastic, wood and glass are not magnetic."),
    ("How many bones are in the body of an adult human?",
     "206", "106", "306", "26",
     ("An adult skeleton has 206 bones. Babies are born with more, and some fuse together as "
      "they grow.")),
    ("Which vitamin does human skin make when it is exposed to sunlight?",
     "Vitamin D", "Vitamin C", "Vitamin A", "Vitamin K",
     ("Sunlight on the skin starts the making of vitamin D, which helps the body absorb "
      "calcium. Vitamins C, A and K come mostly from food.")),
    ("What is the largest organ of the human body?",
     "The skin", "The liver", "The brain", "The stomach",
     ("The skin covers the whole body and is its largest organ. The liver is the largest organ "
      "inside the body.")),
    ("Which of these is a gas at room temperature?",
     "Oxygen", "Iron", "Salt", "Sugar",
     "Oxygen is a gas at room temperature. Iron, salt and sugar are all solids."),
    ("What does a caterpillar grow up to become?",
     "A butterfly or a moth", "A beetle", "A spider", "A bee",
     ("A caterpillar is the young form (larva) of a butterfly or moth. It forms a chrysalis or "
      "cocoon and changes into the adult insect.")),
    ("Which part of the Earth's atmosphere absorbs much of the Sun's ultraviolet light?",
     "The ozone layer", "The Earth's core", "The ocean floor", "The Earth's crust",
     ("The ozone layer, high in the atmosphere, absorbs much of the Sun's ultraviolet light. "
      "The core, the crust and the ocean floor are parts of the Earth, not of the air.")),
    ("A ramp used to roll a heavy box onto a truck is an example of which simple machine?",
     "An inclined plane", "A pulley", "A lever", "A screw",
     ("A ramp is a sloping surface, an inclined plane: it lets you raise a load with less force "
      "by moving it a longer way.")),
    ("What happens to most materials when they are heated?",
     "They expand", "They shrink", "They become magnetic", "They lose all their weight",
     ("Heat makes particles move faster and spread apart, so most materials expand. That is why "
      "bridges have small gaps that close on hot days.")),
    ("Through which of these does sound travel fastest?",
     "Steel", "Air", "Water", "Empty space",
     ("Sound travels as vibrations passed between particles. It is fastest in solids like "
      "steel, slower in water, slower still in air, and cannot cross empty space.")),
    ("Which of these animals is an amphibian?",
     "A salamander", "A lizard", "A turtle", "A shark",
     ("Salamanders are amphibians: they begin life in water and have moist skin. Lizards and "
      "turtles are reptiles, and sharks are fish.")),
    ("What does a seismograph record?",
     "Ground shaking from earthquakes", "Wind speed", "Rainfall", "Air pressure",
     ("A seismograph records how the ground shakes, which is how earthquakes are detected and "
      "measured. Wind, rain and air pressure need other instruments.")),
    ("About how long does the Moon take to orbit the Earth once?",
     "About a month", "About a day", "About a year", "About an hour",
     ("The Moon circles the Earth about once every 27 days, roughly a month, which is also why "
      "its phases repeat monthly.")),
    ("Which of these is a chemical change?",
     "Wood burning", "Ice melting", "Paper being cut", "Water boiling",
     ("Burning turns wood into new substances such as ash, smoke and gases, so it is a chemical "
      "change. Melting, cutting and boiling change only the shape or state.")),
    ("What do we call a scientist who studies rocks?",
     "A geologist", "A biologist", "An astronomer", "A chemist",
     ("Geologists study rocks, minerals and how the Earth changes. Biologists study living "
      "things, astronomers space, and chemists substances.")),
    ("Which of these helps a cactus survive in the desert?",
     "It stores water in its thick stem", "It has large, thin leaves",
     "It grows only in deep shade", "It needs watering every day",
     ("A cactus stores water in its thick stem, and its spines lose far less water than broad "
      "leaves would, so it can last a long time without rain.")),
]

EVERYDAY: list[Question] = [
    (("Maria's phone battery is almost empty and she has a long train ride ahead. What is the "
      "most sensible thing to do before she leaves?"),
     "Charge the phone", "Turn the screen brightness to maximum", "Download several large games",
     "Leave the charger at home",
     ("Charging the phone first gives her enough battery for the ride. The other choices drain "
      "the battery faster or leave her unable to charge it.")),
    (("Dark clouds are gathering and the wind is picking up as Leo heads out for a walk. What "
      "should he most likely take with him?"),
     "An umbrella", "Sunscreen only", "A beach towel", "Sunglasses only",
     ("Dark clouds and a rising wind usually mean rain is coming, so an umbrella is the most "
      "useful thing to bring.")),
    (("A potted plant wilted while its owner was away during two hot weeks. What is the most "
      "likely cause?"),
     "It did not get enough water", "It got too much moonlight", "The pot was the wrong color",
     "The room was too cold",
     ("Soil dries out quickly in hot weather. With no one to water it, the plant most likely "
      "wilted from lack of water.")),
    ("A recipe says to preheat the oven. When should you turn the oven on?",
     "Before putting the food in", "After the food is cooked", "Only if the food is frozen",
     "Halfway through the cooking time",
     ("Preheating means bringing the oven to the right temperature before the food goes in, so "
      "it cooks evenly and in the expected time.")),
    ("Ben's glasses fog up as soon as he walks into a warm kitchen on a cold day. Why?",
     "Warm, moist air condenses on the cold lenses", "The lenses are dirty",
     "The kitchen light is too bright", "The glasses are too small",
     ("The lenses are still cold from outside. Warm, moist air touching them cools, and its "
      "water vapor condenses into tiny droplets that look like fog.")),
    ("Where is the safest place to be during a thunderstorm with lightning?",
     "Inside a closed building", "Under a tall tree", "On top of a hill", "Swimming in a lake",
     ("Lightning tends to strike tall or exposed things and travels through water. A closed "
      "building is far safer than a tree, a hilltop or a lake.")),
    (("A library book is due tomorrow, but Ana has not finished reading it. What is the most "
      "reasonable thing to do?"),
     "Ask the library to renew it", "Keep it without telling anyone", "Throw it away",
     "Tear out the pages she has not read",
     ("Renewing the book lets her keep reading it honestly and without a fine. The other "
      "choices are dishonest or damage the book.")),
    ("Omar wants to know whether it will rain tomorrow. Where should he look?",
     "A weather forecast", "A dictionary", "A calendar", "A world map",
     ("A weather forecast predicts rain, temperature and wind for the coming days; a "
      "dictionary, a calendar and a map do not.")),
    (("A loaf of bread left in a warm cupboard for two weeks is covered in green fuzz. What "
      "caused it?"),
     "Mold grew on it", "The flour turned into grass", "It soaked up paint from the cupboard",
     "It froze",
     ("Green fuzz on old bread is mold, a fungus that grows on food kept too long in warm, damp "
      "places.")),
    ("What is the best way to keep milk fresh for longer?",
     "Keep it in the refrigerator", "Leave it on a sunny windowsill", "Keep it next to the oven",
     "Shake it every hour",
     ("Cold slows the bacteria that spoil milk, so the refrigerator keeps it fresh longer. Heat "
      "and sunlight make it spoil faster.")),
    (("Ella is running late for school. One route is short and flat; the other is long and "
      "hilly. Which route should she take?"),
     "The short, flat route", "The long, hilly route", "Either, since they take the same time",
     "Neither, she should stay home",
     ("A short, flat route takes less time and effort, so it is the better choice when she is "
      "late.")),
    ("Why do cyclists often wear bright or reflective clothing at night?",
     "So drivers can see them", "To keep warm", "To ride faster",
     "Because every sport requires it",
     ("Bright and reflective clothing catches headlights, which makes cyclists much easier for "
      "drivers to see in the dark.")),
    ("Which of these does not belong with the others: hammer, screwdriver, wrench, pillow?",
     "Pillow", "Hammer", "Screwdriver", "Wrench",
     ("A hammer, a screwdriver and a wrench are tools for building and fixing things. A pillow "
      "is bedding, not a tool.")),
    ("Jin's soup is too hot to eat. What is a sensible way to cool it down?",
     "Stir it and let it sit for a few minutes", "Put it back in the oven",
     "Cover it with a thick blanket", "Add more hot water",
     ("Stirring and waiting let the heat escape into the air. The oven and hot water would make "
      "it hotter, and a blanket would keep the heat in.")),
    ("A smoke alarm goes off at home and you smell smoke. What should you do first?",
     "Get everyone outside and call for help", "Open the oven to check inside", "Go back to sleep",
     "Take the battery out of the alarm",
     ("An alarm together with the smell of smoke may mean a fire. The first thing is to get "
      "everyone out safely and call the fire service from outside.")),
]

# -- simple logic, generated ------------------------------------------------------------------

PEOPLE = ["Nadia", "Felix", "Hana", "Marco", "Iris", "Kofi", "Yara", "Pablo", "Greta", "Tomas",
          "Leila", "Arjun", "Ines", "Dmitri", "Wen", "Rosa"]
RELATIONS = [("taller", "tallest", "shortest"), ("older", "oldest", "youngest"),
             ("faster", "fastest", "slowest"), ("heavier", "heaviest", "lightest")]
NOT_ENOUGH = "There is not enough information"


def ordering(rng: random.Random) -> Question:
    """Three people ordered by two comparisons; ask for the top, the bottom or the middle."""
    a, b, c = rng.sample(PEOPLE, 3)
    more, top, bottom = rng.choice(RELATIONS)
    clues = [f"{a} is {more} than {b}.", f"{b} is {more} than {c}."]
    rng.shuffle(clues)
    ask, answer = rng.choice([(f"the {top}", a), (f"the {bottom}", c), ("in the middle", b)])
    question = f"{clues[0]} {clues[1]} Of the three, who is {ask}?"
    wrong = [name for name in (a, b, c) if name != answer][:2] + [NOT_ENOUGH]
    explanation = (f"Putting the clues together, from {top} to {bottom} the order is {a}, {b}, "
                   f"{c}. So the one who is {ask} is {answer}.")
    return question, answer, *wrong, explanation


# (condition, result, the result denied, the condition denied, the condition as a fact)
CONDITIONALS = [
    ("it snows overnight", "the school bus runs late", "the school bus ran on time",
     "it did not snow overnight", "it snowed overnight"),
    ("the shop is open", "its sign is lit", "the sign is dark", "the shop is closed",
     "the shop is open"),
    ("Priya finishes her homework", "she goes to the park", "she did not go to the park",
     "she did not finish her homework", "she finished her homework"),
    ("the tank is empty", "the warning light comes on", "the warning light is off",
     "the tank is not empty", "the tank is empty"),
]


def _capital(text: str) -> str:
    return text[0].upper() + text[1:]


def contrapositive(case: tuple[str, str, str, str, str]) -> Question:
    """If P then Q; not Q: so not P."""
    p, q, not_q, not_p, p_fact = case
    question = (f"Suppose this rule always holds: if {p}, then {q}. Today {not_q}. What can "
                "you conclude?")
    explanation = (f"The rule says that if {p}, then {q}. Since {not_q}, the condition cannot "
                   f"have been met, so {not_p}.")
    return (question, _capital(not_p), _capital(p_fact), "The rule was broken today",
            NOT_ENOUGH, explanation)


# (a kind, the larger group, another member of that group)
SUBSETS = [("tulips", "flowers", "rose"), ("beetles", "insects", "ant"),
           ("violins", "string instruments", "cello")]


def subset(case: tuple[str, str, str]) -> Question:
    """All A are B does not make every B an A."""
    kind, group, other = case
    question = (f"All {kind} are {group}. Sam picked out one of the {group}. Must it be one of "
                f"the {kind}?")
    explanation = (f"Every one of the {kind} is among the {group}, but the {group} include "
                   f"other kinds too, such as a {other}. So Sam's pick could be something "
                   f"else.")
    return (question, "No, it could be another kind", "Yes, it must be",
            f"No, it cannot be one of the {kind}", "Only on weekends", explanation)


def logic_questions(rng: random.Random, n_ordering: int) -> list[Question]:
    """`n_ordering` ordering questions (distinct), then the conditionals and the subsets."""
    out: list[Question] = []
    while len(out) < n_ordering:
        q = ordering(rng)
        if all(q[0] != seen[0] for seen in out):
            out.append(q)
    out += [contrapositive(case) for case in CONDITIONALS]
    out += [subset(case) for case in SUBSETS]
    return out
