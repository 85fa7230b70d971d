"""Stand-alone studies: measurements that are not eval suites, each run as ``python -m evals.studies.<name>``.

sentiment_head       trains and measures the shipped sentiment head (its weights ship with the package)
triage_head          trains the shipped triage head from the demo and help-center topics
sentiment_tweeteval  shipped and workspace sentiment heads against VADER on TweetEval val
triage_public        triage heads through the product's training path on banking77 and Bitext intents
triage_features      hashed n-gram variants of the triage head on banking77 (what the shipped layout was chosen against)
retrieval_banking77  recall/precision/MRR@10 of vector, lexical and hybrid search on banking77
reply_drafts         guard pass rate and citation validity of reply drafts on Bitext requests
language_id          language identification of customer messages (es, de, fr, en)

The measuring ones need ../shared/data (language_id falls back to the demo's English messages without it). The eval
suites in evals/suites are what CI and ``copilot eval run`` measure.
"""
