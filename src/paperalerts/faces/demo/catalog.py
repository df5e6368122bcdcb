"""The demo's world: invented papers, the two days two sources list them, and four subscribers.

Every title, author, abstract and id here is made up for the demo (the ids use the unassigned
range 2611.99xxx so they cannot be mistaken for real arXiv papers). Day one is each source's
baseline (stored, searchable, no alerts); day two brings the news:

- the "Daily papers" API lists six new papers and lists day one's attention paper again with
  more upvotes (an *update*: it now crosses a threshold rule);
- the feed carries one paper the API listed too (one paper, not two) and one of its own.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoPaper:
    id: str
    title: str
    authors: tuple[str, ...]
    abstract: str
    published: str  # ISO date
    upvotes: int
    comments: int
    organization: str = ""
    code_url: str = ""


PAPERS: tuple[DemoPaper, ...] = (
    DemoPaper("2611.99001", "Diffusion Transformers at Scale Without Attention Sinks",
       ("Mira Okafor", "Tomas Lindqvist", "Hana Sato"),
       "We train diffusion transformers up to eight billion parameters and show that attention "
       "sinks vanish when timestep embeddings are injected per head. Image quality improves at "
       "every scale we try.", "2026-11-02", 34, 4, "Northbridge AI Lab"),
    DemoPaper("2611.99002", "Sparse Mixture Routers Learn Curricula on Their Own",
       ("Devika Raman", "Jonas Albrecht"),
       "Routers of sparse mixture-of-experts language models order their training data without "
       "being told to. We measure the curriculum they find and reuse it to train dense models "
       "faster.", "2026-11-02", 18, 2),
    DemoPaper("2611.99003", "Efficient Attention With Rotating Landmark Tokens",
       ("Lucia Ferreira", "Ahmed Nasser", "Kwame Mensah", "Yuki Tanaka"),
       "Landmark tokens that rotate through the sequence give linear-time attention with the "
       "accuracy of full attention on long-document benchmarks, at a third of the memory.",
       "2026-11-02", 20, 3, "Kestrel Research", "https://github.com/example/rotating-landmarks"),
    DemoPaper("2611.99004", "Measuring Calibration Drift in Deployed Classifiers",
       ("Pieter de Vries", "Amara Obi"),
       "Classifiers lose calibration months after deployment even when accuracy holds. We give a "
       "cheap monitor that flags the drift from unlabeled traffic.", "2026-11-02", 9, 0),
    DemoPaper("2611.99005", "Quantum Error Mitigation by Learned Noise Inversion",
       ("Sofia Marino", "Raj Patel"),
       "A small network learns to invert the noise of a superconducting quantum processor and "
       "halves the error of variational circuits without extra qubits.", "2026-11-02", 14, 1),
    DemoPaper("2611.99006", "Tokenizer-Free Speech Recognition for Low-Resource Languages",
       ("Ngozi Eze", "Mateo Rojas", "Ines Kowalski"),
       "Character-level acoustic models trained on forty hours of speech match tokenized systems "
       "in eleven low-resource languages.", "2026-11-02", 11, 2),
    DemoPaper("2611.99007", "Latent Diffusion for Sparse Weather Radar Nowcasting",
       ("Elena Petrova", "Samuel Osei", "Mei Lin"),
       "We nowcast precipitation from sparse radar sweeps with a latent diffusion model that "
       "conditions on satellite imagery, beating optical-flow baselines up to ninety minutes "
       "ahead.", "2026-11-03", 52, 6, "Northbridge AI Lab"),
    DemoPaper("2611.99008", "ToolSmith: Agents That Write Their Own Tools",
       ("Farid Haddad", "Clara Jensen", "Wen Zhou"),
       "ToolSmith agents write, test and keep small Python tools while solving tasks, and reuse "
       "them later. On a suite of data-wrangling tasks they need half the steps of fixed-tool "
       "baselines.", "2026-11-03", 38, 5, "", "https://github.com/example/toolsmith"),
    DemoPaper("2611.99009", "A Survey of Agent Benchmarks",
       ("Olga Ivanova", "Benedikt Roth"),
       "We review ninety benchmarks for language-model agents, group them by the skills they "
       "test, and list the ones whose leaderboards have saturated.", "2026-11-03", 12, 1),
    DemoPaper("2611.99010", "Folding Small Proteins with Equivariant Graph Networks",
       ("Ana Lima", "Kofi Boateng", "Lena Vogel", "Arjun Mehta"),
       "An equivariant graph neural network predicts the structure of small proteins from "
       "sequence alone in seconds, within two angstroms of experiment for most targets.",
       "2026-11-03", 27, 3, "Kestrel Research"),
    DemoPaper("2611.99011", "Score-Based Diffusion Priors for Molecular Docking",
       ("Isabel Moreno", "Hiro Nakamura"),
       "A score-based diffusion prior over ligand poses makes molecular docking both faster and "
       "more accurate than search-based tools on three benchmark sets.", "2026-11-03", 31, 2),
    DemoPaper("2611.99012", "Compressing Key-Value Caches with Learned Quantisation",
       ("Tariq Aziz", "Maja Novak", "Chen Wei"),
       "Learned four-bit quantisation of the key-value cache lets a long-context language model "
       "serve four times the users on one accelerator with no loss on retrieval tasks.",
       "2026-11-03", 61, 9, "", "https://github.com/example/kv-quant"),
    DemoPaper("2611.99013", "Counting Objects in Cluttered Scenes by Asking Twice",
       ("Rosa Alvarez", "Emil Nilsson"),
       "Vision-language models count better when asked to list the objects first and count "
       "the list second.", "2026-11-02", 7, 0),
    DemoPaper("2611.99014", "Protein Language Models Know Their Contacts",
       ("Grace Mwangi", "Victor Hugo Santos"),
       "Attention maps of protein language models recover residue contacts without supervision; "
       "we read them out with a linear probe and beat coevolution methods on orphan families.",
       "2026-11-03", 22, 2),
)  # fmt: skip

BY_ID = {p.id: p for p in PAPERS}

# Day two's update: the attention paper is listed again with more upvotes.
UPVOTES_DAY2 = {"2611.99003": 45}

# Which papers each source lists on each day, in page order.
API_DAYS: tuple[tuple[str, ...], ...] = (
    ("2611.99001", "2611.99002", "2611.99003", "2611.99004", "2611.99005", "2611.99006"),
    ("2611.99012", "2611.99007", "2611.99003", "2611.99008", "2611.99011", "2611.99010",
     "2611.99009"),
)  # fmt: skip
FEED_DAYS: tuple[tuple[str, ...], ...] = (
    ("2611.99001", "2611.99002", "2611.99013"),
    ("2611.99007", "2611.99014", "2611.99001", "2611.99002", "2611.99013"),
)
DAY_DATES = ("2026-11-02", "2026-11-03")


@dataclass(frozen=True)
class DemoSubscriber:
    email: str
    timezone: str
    rules: tuple[tuple[str, str], ...]  # (name, query)


SUBSCRIBERS: tuple[DemoSubscriber, ...] = (
    DemoSubscriber(
        "ada@example.org",
        "Europe/London",
        (("Diffusion", "diffusion"), ("Graph learning", '"graph neural" OR gnn*')),
    ),
    DemoSubscriber(
        "grace@example.org",
        "America/New_York",
        (("Agents, no surveys", "title:agent* -survey"), ("Popular", "upvotes:>=40")),
    ),
    DemoSubscriber("linus@example.org", "Europe/Helsinki", (("Biology", "protein OR molecul*"),)),
    DemoSubscriber("marie@example.org", "Europe/Paris", (("Quantum", "quantum"),)),
)

# Public topics offered at sign-up in `demo --serve` (no demo subscriber follows them, so they
# change nothing in the demo's expected matches).
TOPICS: tuple[tuple[str, str, str], ...] = (
    (
        "Diffusion models",
        'diffusion OR "score-based"',
        "Diffusion and score-based generative models.",
    ),
    ("LLM agents", 'agent* AND (llm OR "language model")', "Agents built on language models."),
)

# What day two must bring each subscriber (pinned by the demo's test, explained above).
EXPECTED_MATCHES: dict[str, tuple[str, ...]] = {
    "ada@example.org": ("2611.99007", "2611.99010", "2611.99011"),
    "grace@example.org": ("2611.99003", "2611.99007", "2611.99008", "2611.99012"),
    "linus@example.org": ("2611.99010", "2611.99011", "2611.99014"),
    "marie@example.org": (),
}
