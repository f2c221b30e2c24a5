"""Other names for the same measure: "GDP" = "gross domestic product" = 地区生产总值.

Briefings and their readers name a measure in different words and languages. The question
frame reads them as one: the reader's overlap features compare canonical forms
(``canonical``), and the keyword search looks for every form (``expanded``).
"""

from __future__ import annotations

import re
from functools import lru_cache

from ingest.vocabulary import CJK_RE

# Each group: the canonical form first, then the other ways a text writes it. Only names
# of the same measure: "exports" alone is not "foreign trade".
GROUPS: tuple[tuple[str, ...], ...] = (
    ("gdp", "gross domestic product", "gross regional product", "地区生产总值", "国内生产总值",
     "生产总值"),
    ("cpi", "consumer price index", "consumer prices", "居民消费价格指数", "居民消费价格"),
    ("ppi", "producer price index", "工业生产者出厂价格"),
    ("fdi", "foreign direct investment", "外商直接投资", "实际使用外资"),
    ("foreign trade", "imports and exports", "exports and imports", "import and export",
     "total trade", "进出口总额", "进出口", "外贸"),
    ("r&d", "research and development", "研发"),
    ("teu", "teus", "twenty-foot equivalent units", "标准箱", "标箱"),
    ("year on year", "year-on-year", "yoy", "同比"),
    ("exports", "export", "sales abroad", "sold abroad", "出口额", "出口"),
    ("imports", "import", "purchases from abroad", "进口额", "进口"),
    ("net profit", "net income", "profit after tax", "earnings after tax", "归母净利润", "净利润"),
    ("revenue", "sales revenue", "turnover", "营业收入", "营收"),
    ("unemployment rate", "jobless rate", "失业率"),
    ("retail sales", "retail sales of consumer goods", "社会消费品零售总额"),
    ("fixed-asset investment", "fixed asset investment", "固定资产投资"),
    ("industrial output", "industrial value added", "规模以上工业增加值", "工业增加值"),
)  # fmt: skip


def _all_groups() -> tuple[tuple[str, ...], ...]:
    return GROUPS + PLACES


@lru_cache(maxsize=1)
def _pattern() -> tuple[re.Pattern[str], dict[str, int]]:
    forms = {form.lower(): i for i, group in enumerate(_all_groups()) for form in group}
    # Longest first, so that "进出口总额" wins over "进出口"; Latin forms whole words only
    # (one look-around for all of them: per form, it made every sentence's scan slow).
    ordered = sorted(forms, key=len, reverse=True)
    cjk = "|".join(re.escape(f) for f in ordered if not f.isascii())
    latin = "|".join(re.escape(f) for f in ordered if f.isascii())
    pattern = rf"{cjk}|(?<![A-Za-z0-9&])(?:{latin})(?![A-Za-z0-9&])"
    return re.compile(pattern, re.IGNORECASE), forms


def _group(match: re.Match[str]) -> tuple[str, ...]:
    return _all_groups()[_pattern()[1][match.group().lower()]]


@lru_cache(maxsize=8192)  # the same sentences come back as context and in later questions
def canonical(text: str) -> str:
    """``text`` with every known form of a measure or a place followed by its group's first
    one ("上海的GDP" and "Shanghai's gross domestic product" share "Shanghai" and "gdp")."""
    pattern, _ = _pattern()
    # The words as written stay ("exports and imports" still says "exports"); the group's
    # first form is added after them.
    return pattern.sub(
        lambda m: (
            m.group()
            if m.group().lower() == _group(m)[0].lower()
            else f"{m.group()} {_group(m)[0]} "
        ),
        text,
    )


@lru_cache(maxsize=8192)
def with_aliases(text: str, *, chinese: bool = True) -> str:
    """``text`` as a document's side of a comparison: a measure also says its group's first
    form ("gross domestic product" also says "gdp"), a place every other form ("Shanghai"
    also says 上海). A measure's other forms are not added: "foreign trade" must not come
    to say "exports". ``chinese=False`` adds no Chinese form (an English question needs none,
    and Chinese terms would wake the word segmenter)."""
    pattern, _ = _pattern()

    def add(m: re.Match[str]) -> str:
        group = _group(m)
        extra = group if group in PLACES else group[:1]
        others = [f for f in extra if f.lower() != m.group().lower() and (chinese or f.isascii())]
        return " ".join([m.group(), *others]) + " " if others else m.group()

    return pattern.sub(add, text)


def expanded(text: str) -> str:
    """``text`` followed by the other forms of every measure and place it names (for keyword
    search: "GDP" also finds "gross domestic product", 上海 also finds "Shanghai"). Chinese
    forms only for a question that has Chinese in it: an English question stays clear of
    the Chinese word segmenter (a second of start-up)."""
    pattern, _ = _pattern()
    cjk = CJK_RE.search(text) is not None
    extra = {
        f
        for m in pattern.finditer(text)
        for f in _group(m)
        if f.lower() != m.group().lower() and (cjk or f.isascii())
    }
    return text if not extra else text + " " + " ".join(sorted(extra))


# Places a regional briefing names in English or Chinese: one entity either way
# ("What was Shanghai's GDP?" is answered by "上海地区生产总值…" and the other way round).
_PLACES_TEXT = """
    China|中国 Beijing|北京 Shanghai|上海 Tianjin|天津 Chongqing|重庆 Guangdong|广东
    Guangzhou|广州 Shenzhen|深圳 Shandong|山东 Qingdao|青岛 Jinan|济南 Yantai|烟台
    Weifang|潍坊 Rizhao|日照 Taian|Tai'an|泰安 Dezhou|德州 Jining|济宁 Weihai|威海
    Zibo|淄博 Linyi|临沂 Jiangsu|江苏 Nanjing|南京 Suzhou|苏州 Zhejiang|浙江
    Hangzhou|杭州 Ningbo|宁波 Fujian|福建 Xiamen|厦门 Fuzhou|福州 Hubei|湖北
    Wuhan|武汉 Hunan|湖南 Changsha|长沙 Sichuan|四川 Chengdu|成都 Shaanxi|陕西
    Xi'an|Xian|西安 Henan|河南 Zhengzhou|郑州 Hebei|河北 Shijiazhuang|石家庄
    Liaoning|辽宁 Dalian|大连 Shenyang|沈阳 Jilin|吉林 Heilongjiang|黑龙江
    Harbin|哈尔滨 Anhui|安徽 Hefei|合肥 Jiangxi|江西 Nanchang|南昌 Shanxi|山西
    Taiyuan|太原 Yunnan|云南 Kunming|昆明 Guizhou|贵州 Guiyang|贵阳 Guangxi|广西
    Nanning|南宁 Hainan|海南 Haikou|海口 Sanya|三亚 Gansu|甘肃 Lanzhou|兰州
    Qinghai|青海 Xining|西宁 Ningxia|宁夏 Yinchuan|银川 Xinjiang|新疆 Urumqi|乌鲁木齐
    Xizang|Tibet|西藏 Lhasa|拉萨 Inner_Mongolia|内蒙古 Hohhot|呼和浩特 Hong_Kong|香港
    Macao|Macau|澳门 Taiwan|台湾 Xiong'an|Xiongan|雄安 Pudong|浦东
"""
PLACES: tuple[tuple[str, ...], ...] = tuple(
    tuple(form.replace("_", " ") for form in group.split("|")) for group in _PLACES_TEXT.split()
)


@lru_cache(maxsize=1)
def _place_index() -> dict[str, tuple[str, ...]]:
    return {form.lower(): group for group in PLACES for form in group}


def place_forms(name: str) -> tuple[str, ...]:
    """Every way of writing the place ``name`` (itself included), or just ``(name,)``."""
    return _place_index().get(name.lower(), (name,))


@lru_cache(maxsize=1)
def _places_pattern() -> re.Pattern[str]:
    forms = sorted(_place_index(), key=len, reverse=True)
    cjk = "|".join(re.escape(f) for f in forms if not f.isascii())
    latin = "|".join(re.escape(f) for f in forms if f.isascii())
    return re.compile(rf"{cjk}|(?<![A-Za-z0-9])(?:{latin})(?![A-Za-z0-9])", re.IGNORECASE)


def places_in(text: str) -> list[str]:
    """The known places ``text`` names, as written ("qingdao", 青岛), in order."""
    return [m.group() for m in _places_pattern().finditer(text)]
