"""SAVEE/RAVDESS: pretrained speaker-encoder (Resemblyzer GE2E) states as SER features."""
import sys, time, numpy as np, torch
from emofuse.corpora import load_corpus
from emofuse.recipes._speech_fit import SpeechData
from emofuse.features.speech import speed_perturb
from resemblyzer import VoiceEncoder
from resemblyzer.audio import wav_to_mel_spectrogram, normalize_volume
torch.set_num_threads(1)
corpus = sys.argv[1]
speeds = [1.0, 0.8, 0.9, 1.1, 1.2]
recs = load_corpus(corpus).records
data = SpeechData(recs)
enc = VoiceEncoder("cpu")
out = {}
t0 = time.time()
def states(w):
    w = normalize_volume(w, -30, increase_only=True)
    mel = torch.from_numpy(wav_to_mel_spectrogram(w))[None]
    with torch.no_grad():
        h = mel
        per = []
        for layer in range(3):
            # run the stacked LSTM layer by layer to keep every layer's outputs
            lstm = enc.lstm
            wi = [getattr(lstm, f"{n}_l{layer}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            sub = torch.nn.LSTM(h.shape[-1], 256, batch_first=True)
            sub.weight_ih_l0.data, sub.weight_hh_l0.data, sub.bias_ih_l0.data, sub.bias_hh_l0.data = [p.data for p in wi]
            h, (hn, _) = sub(h)
            per.append(h[0])
        emb = torch.relu(enc.linear(hn[-1]))
        emb = emb / emb.norm()
    feats = [emb[0].numpy()]
    for p in per:
        feats += [p.mean(0).numpy(), p.std(0).numpy()]
    return np.concatenate(feats)
for s in speeds:
    for r in data.records:
        w = data.waves[r.id] if s == 1 else speed_perturb(data.waves[r.id], s)
        out[f"{s}|{r.id}"] = states(w.astype(np.float32))
    print(s, time.time() - t0, flush=True)
ids = [r.id for r in data.records]
np.savez(f"/work/exp/resem_{corpus}.npz", ids=np.array(ids), **{k.replace("|", "__"): v for k, v in out.items()})
