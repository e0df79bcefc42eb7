"""Write this example's data: small tool-calling conversations the project wrote itself (Apache-2.0, as the rest
of tunesmith; see DATA_LICENSE.md). Deterministic: running it again writes the same files.

Three tools (a unit converter, a weather lookup, a timezone clock) with made-up results. Train rows are whole
conversations (the call, the tool's result, the answer) plus some questions answered without a tool; test rows
end at the call, so evaluation scores the calls the model writes (`tool_call_*` metrics).

    python examples/tool_calling/make_data.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent

TOOLS = [
    {"type": "function", "function": {
        "name": "convert_units", "description": "Convert a quantity from one unit to another.",
        "parameters": {"type": "object", "properties": {
            "value": {"type": "number"}, "from_unit": {"type": "string", "enum": ["km", "mi", "kg", "lb", "C", "F"]},
            "to_unit": {"type": "string", "enum": ["km", "mi", "kg", "lb", "C", "F"]}},
            "required": ["value", "from_unit", "to_unit"]}}},
    {"type": "function", "function": {
        "name": "get_weather", "description": "The current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "get_time", "description": "The current local time in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
]
CITIES = ["Paris", "Lagos", "Lima", "Osaka", "Oslo", "Cairo", "Quito", "Perth", "Seoul", "Tunis", "Porto", "Hanoi"]
CONVERSIONS = [("km", "mi", 0.621371), ("mi", "km", 1.609344), ("kg", "lb", 2.204623), ("lb", "kg", 0.453592)]
DIRECT = [("What is the capital of Peru?", "Lima."), ("How many days are in a leap year?", "366."),
          ("Spell 'tool' backwards.", "loot"), ("What is 12 times 12?", "144."),
          ("Name a primary colour.", "Red."), ("Which planet is closest to the Sun?", "Mercury.")]


def call_turn(name: str, arguments: dict, number: int) -> dict:
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": f"call_{number}", "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}]}


def task(rng: random.Random):
    """(question, call name, call arguments, tool result, final answer)."""
    kind = rng.choice(["convert", "convert", "weather", "time"])
    if kind == "convert":
        source, target, factor = rng.choice(CONVERSIONS)
        value = rng.randint(2, 500)
        result = round(value * factor, 2)
        return (f"How many {target} is {value} {source}?", "convert_units",
                {"value": value, "from_unit": source, "to_unit": target}, {"value": result, "unit": target},
                f"{value} {source} is {result} {target}.")
    city = rng.choice(CITIES)
    if kind == "weather":
        degrees, sky = rng.randint(-5, 35), rng.choice(["sunny", "cloudy", "rainy", "windy"])
        return (f"What's the weather like in {city} right now?", "get_weather", {"city": city},
                {"temperature_c": degrees, "sky": sky}, f"It is {degrees} °C and {sky} in {city}.")
    hour, minute = rng.randint(0, 23), rng.choice([0, 15, 30, 45])
    return (f"What time is it in {city}?", "get_time", {"city": city}, {"time": f"{hour:02d}:{minute:02d}"},
            f"It is {hour:02d}:{minute:02d} in {city}.")


def rows(count: int, rng: random.Random, whole: bool, asked: set[str], direct: list) -> list[dict]:
    """``count`` rows whose questions are not in ``asked`` (every split's questions differ: no duplicates, no
    leakage), one of ``direct`` after every 8th tool row while they last."""
    made = []
    for number in range(count):
        if whole and number % 8 == 7 and direct:  # some questions need no tool: the model learns not to call one
            question, answer = direct.pop()
            made.append({"tools": TOOLS, "messages": [{"role": "user", "content": question},
                                                      {"role": "assistant", "content": answer}]})
            continue
        question, name, arguments, result, answer = task(rng)
        while question in asked:
            question, name, arguments, result, answer = task(rng)
        asked.add(question)
        messages = [{"role": "user", "content": question}, call_turn(name, arguments, number)]
        if whole:
            messages += [{"role": "tool", "tool_call_id": f"call_{number}", "content": json.dumps(result)},
                         {"role": "assistant", "content": answer}]
        made.append({"tools": TOOLS, "messages": messages})
    return made


def main() -> None:
    rng, asked, direct = random.Random(0), set(), list(DIRECT)
    for name, count, whole in (("train", 160, True), ("validation", 24, True), ("test", 40, False)):
        made = rows(count, rng, whole, asked, direct if name == "train" else [])
        path = HERE / f"{name}.jsonl"
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in made), encoding="utf-8")


if __name__ == "__main__":
    main()
