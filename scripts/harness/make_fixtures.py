"""Writes tests/fixtures/benchmarks/: a few rows of each benchmark in the schema its dataset is
published in on the Hugging Face hub (the rows are our own, not the datasets'). JSONL for most,
Parquet for ARC (its `choices` is a nested struct there). Needs pyarrow (the harness venv has it).

    ~/.cache/archlab-harness/bin/python scripts/harness/make_fixtures.py
"""

import json
from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "benchmarks"

PIQA = [
    ("How do I keep bread from going stale?", "Store it in a sealed bag at room temperature.",
     "Leave it uncovered next to the oven.", 0),
    ("To make a cup of tea,", "pour cold water over the leaves and serve at once.",
     "pour boiling water over the leaves and let them steep.", 1),
    ("How can I dry wet shoes quickly?", "Stuff them with newspaper and leave them somewhere warm.",
     "Fill them with water and put them in the freezer.", 0),
    ("To open a stuck jar lid,", "run the lid under hot water for a minute.",
     "put the jar in the fridge overnight.", 0),
    ("How do you stop a wooden door from squeaking?", "Paint the door a darker colour.",
     "Rub a little oil or soap into the hinges.", 1),
    ("To find a small lost screw on the carpet,", "vacuum the whole room with the bag removed.",
     "cover the vacuum nozzle with a stocking and run it over the carpet.", 1),
    ("How should I store a sharp knife?", "In a block or on a magnetic strip.",
     "Loose in a drawer with the blade up.", 0),
    ("To cool a hot drink faster,", "stir it and blow across the top.",
     "wrap the cup in a thick towel.", 0),
]

HELLASWAG = [
    ("Making tea", "[header] How to make tea [title] Boil fresh water in a kettle.",
     "[step] once it boils,",
     ["pour the water over the tea bag in a cup.", "the kettle [substeps] is painted blue.",
      "Sing a song about the mountains.", "throw the cup out of the window."], "0"),
    ("Washing a car", "A man sprays a car with a hose.", "he then",
     ["eats a sandwich on the roof.", "scrubs the doors with a soapy sponge.",
      "flies away over the trees.", "reads a book about cooking."], "1"),
    ("Playing the piano", "A girl sits down at a piano.", "she",
     ["starts to play a slow song with both hands.", "drinks the piano.",
      "Drives the piano down the street.", "paints the ceiling green."], "0"),
    ("Running a marathon", "Runners line up at the start of a race.", "the gun fires and",
     ["they all sit down to eat.", "the runners set off down the road.",
      "the road turns into a river.", "nobody moves for an hour."], "1"),
    ("Baking cookies", "[title] Preheat the oven. [step] Mix the butter and sugar.",
     "then add THE flour and",
     ["stir until a dough forms.", "put the bowl in the bath.",
      "call a taxi to the airport.", "plant the dough in the garden."], "0"),
    ("Brushing teeth", "A boy puts toothpaste on a brush.", "he",
     ["brushes his teeth in small circles.", "brushes the dog with it.",
      "throws the brush at the mirror.", "eats the toothpaste tube."], "0"),
]

ARC = [
    ("Which of these is a source of light?", ["a mirror", "the Sun", "the Moon", "a window"],
     ["A", "B", "C", "D"], "B"),
    ("What do plants need to make their own food?", ["sunlight", "darkness", "salt", "sand"],
     ["A", "B", "C", "D"], "A"),
    ("Which state of matter has a definite shape?", ["gas", "liquid", "solid"],
     ["A", "B", "C"], "C"),
    ("Water freezes at what temperature in degrees Celsius?", ["100", "50", "0", "-50"],
     ["1", "2", "3", "4"], "3"),
    ("Which tool measures mass?", ["a ruler", "a thermometer", "a balance", "a clock"],
     ["A", "B", "C", "D"], "C"),
    ("What gas do animals breathe out?", ["oxygen", "carbon dioxide", "helium", "hydrogen"],
     ["A", "B", "C", "D"], "B"),
]

WINOGRANDE = [
    ("The trophy did not fit in the suitcase because the _ was too big.", "trophy", "suitcase", "1"),
    ("The trophy did not fit in the suitcase because the _ was too small.", "trophy", "suitcase", "2"),
    ("Sarah lent Maria her umbrella because _ had forgotten hers.", "Sarah", "Maria", "2"),
    ("The cat chased the mouse until the _ was tired of running away.", "cat", "mouse", "2"),
    ("Paul poured water from the bottle into the cup until the _ was full.", "bottle", "cup", "2"),
    ("Paul poured water from the bottle into the cup until the _ was empty.", "bottle", "cup", "1"),
]

LAMBADA = [
    "She opened the door and the cold wind blew in. She shivered and pulled her coat tighter around her",
    "He had waited all year for his birthday. When it finally came he opened his presents",
    "The old dog slept by the fire every night. In the morning it would wake and bark at the door",
    "They rowed the small boat across the lake. When they reached the other side they pulled it onto the shore",
    "The baker took the bread out of the oven. The whole shop smelled of fresh bread",
    "It rained all day so the children stayed inside. They played cards until it was time for bed",
]


def write_jsonl(name: str, rows: list[dict]) -> None:
    with (OUT / name).open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def main() -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    OUT.mkdir(parents=True, exist_ok=True)
    write_jsonl("piqa.jsonl", [{"goal": g, "sol1": a, "sol2": b, "label": l} for g, a, b, l in PIQA])
    write_jsonl("hellaswag.jsonl", [
        {"ind": i, "activity_label": act, "ctx_a": a, "ctx_b": b, "ctx": f"{a} {b}",
         "endings": endings, "source_id": f"fixture~{i}", "split": "val",
         "split_type": "indomain", "label": label}
        for i, (act, a, b, endings, label) in enumerate(HELLASWAG)])
    table = pa.table({
        "id": [f"fixture_{i}" for i in range(len(ARC))],
        "question": [q for q, _, _, _ in ARC],
        "choices": [{"text": t, "label": l} for _, t, l, _ in ARC],
        "answerKey": [k for _, _, _, k in ARC],
    })
    pq.write_table(table, OUT / "arc_easy.parquet", compression="snappy")
    write_jsonl("winogrande.jsonl", [
        {"sentence": s, "option1": a, "option2": b, "answer": ans} for s, a, b, ans in WINOGRANDE])
    write_jsonl("lambada_openai.jsonl", [{"text": t} for t in LAMBADA])


if __name__ == "__main__":
    main()
