#!/usr/bin/python3
"""Write models/moe/train.bin: training tokens for moby-moe's built-in trainer (`donghae experts
propose --train`, idle-time training). The first 128 windows x 64 tokens + 1 of the training
chapters (every chapter but the held-out ones the validation set comes from), tokenized exactly
as models/train-moe.py does, as uint32 little-endian. Deterministic: same inputs, same bytes.

    /usr/bin/python3 models/moe-train-set.py
"""
import importlib.util
import os
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location('train_moe', os.path.join(ROOT, 'models', 'train-moe.py'))
moe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(moe)

WINDOWS, WINDOW_TOKENS = 128, 64
tok, _ = moe.load_tokenizer()
eot = tok.vocab['<|endoftext|>']
ids = []
for chapter, _title, text in moe.lm.load_book():
    if moe.lm.is_heldout(chapter):
        continue
    ids.append(eot)
    ids.extend(tok.encode(text))
    if len(ids) > WINDOWS * WINDOW_TOKENS:
        break
ids = ids[:WINDOWS * WINDOW_TOKENS + 1]
with open(os.path.join(ROOT, 'models', 'moe', 'train.bin'), 'wb') as f:
    f.write(struct.pack('<%dI' % len(ids), *ids))
print('models/moe/train.bin: %d tokens' % len(ids))
