"""Feedback that moves retrieval: vote credits and bounded boosts on the chunks an answer cited
(`boosts`), operator controls (pin, reset, hide), and curated answers served first (`curated`).
Pure logic over plain values: the run store keeps the rows, search and `ask` apply the results."""
