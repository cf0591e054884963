"""Words the synthetic city is named with: institutions, streets, people; Chinese numerals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl

from energy_audit.synthetic.parameters import _REGION_NAME

__all__: list[str] = []


_MUNICIPAL_BUREAUS: Final = (
    ("education", "天津市教育委员会"), ("health", "天津市卫生健康委员会"),
    ("culture", "天津市文化和旅游局"), ("sports", "天津市体育局"),
    ("science", "天津市科学技术局"), ("offices", "天津市机关事务管理局"),
    ("development", "天津市发展和改革委员会"), ("industry", "天津市工业和信息化局"),
    ("civil", "天津市民政局"), ("justice", "天津市司法局"), ("finance", "天津市财政局"),
    ("hr", "天津市人力资源和社会保障局"), ("planning", "天津市规划和自然资源局"),
    ("ecology", "天津市生态环境局"), ("housing", "天津市住房和城乡建设委员会"),
    ("transport", "天津市交通运输委员会"), ("water", "天津市水务局"),
    ("agriculture", "天津市农业农村委员会"), ("commerce", "天津市商务局"),
    ("veterans", "天津市退役军人事务局"), ("emergency", "天津市应急管理局"),
    ("audit", "天津市审计局"), ("market", "天津市市场监督管理局"),
    ("statistics", "天津市统计局"), ("medical_security", "天津市医疗保障局"),
    ("public_security", "天津市公安局"), ("court", "天津市高级人民法院"),
    ("procuratorate", "天津市人民检察院"), ("government", "天津市人民政府办公厅"),
    ("congress", "天津市人大常委会办公厅"), ("cppcc", "天津市政协办公厅"),
    ("party", "中共天津市委办公厅"), ("organization", "中共天津市委组织部"),
    ("propaganda", "中共天津市委宣传部"), ("archives", "天津市档案馆"),
)  # fmt: skip
_DISTRICT_BUREAUS: Final = (
    ("education", "教育局"), ("health", "卫生健康委员会"), ("culture", "文化和旅游局"),
    ("science", "科学技术局"), ("civil", "民政局"), ("finance", "财政局"),
    ("development", "发展和改革委员会"), ("hr", "人力资源和社会保障局"),
    ("housing", "住房和建设委员会"), ("ecology", "生态环境局"), ("market", "市场监督管理局"),
    ("agriculture", "农业农村委员会"), ("emergency", "应急管理局"), ("audit", "审计局"),
    ("statistics", "统计局"), ("justice", "司法局"), ("water", "水务局"),
    ("veterans", "退役军人事务局"), ("offices", "机关事务管理局"), ("planning", "规划和自然资源局"),
)  # fmt: skip
_UNIVERSITIES: Final = (
    "天津师范大学", "天津理工大学", "天津科技大学", "天津工业大学", "天津医科大学",
    "天津中医药大学", "天津财经大学", "天津商业大学", "天津外国语大学", "天津城建大学",
    "天津农学院", "天津体育学院", "天津音乐学院", "天津美术学院", "天津职业技术师范大学",
    "天津市职业大学", "天津交通职业学院", "天津轻工职业技术学院", "天津电子信息职业技术学院",
    "天津机电职业技术学院", "天津现代职业技术学院", "天津医学高等专科学校", "天津城市职业学院",
    "天津海运职业学院", "天津艺术职业学院", "天津石油职业技术学院", "天津铁道职业技术学院",
)  # fmt: skip
_MUNICIPAL_HOSPITALS: Final = (
    "天津市第一中心医院", "天津市第三中心医院", "天津市人民医院", "天津市肿瘤医院",
    "天津市儿童医院", "天津市胸科医院", "天津市眼科医院", "天津市口腔医院", "天津市第二人民医院",
    "天津市海河医院", "天津市安定医院", "天津市环湖医院", "天津市中医药研究院附属医院",
    "天津市妇女儿童保健中心", "天津市疾病预防控制中心", "天津市急救中心", "天津市血液中心",
    "天津市天津医院", "天津市第四中心医院", "天津市第五中心医院",
)  # fmt: skip
_MUNICIPAL_VENUES: Final = (
    "天津博物馆", "天津美术馆", "天津图书馆", "天津自然博物馆", "天津市群众艺术馆", "天津大剧院",
    "天津奥林匹克中心体育场", "天津市人民体育馆", "天津市少年儿童图书馆", "天津科学技术馆",
    "天津市文化中心", "天津市体育中心", "天津市水上运动中心", "天津市青少年活动中心",
)  # fmt: skip
_RESEARCH_FIELDS: Final = (
    "农业科学", "水产", "畜牧兽医", "环境保护科学", "建筑设计", "电子仪表", "化工", "机械",
    "医药科学", "中医药", "计量监督检测科学", "城市规划设计", "水利科学", "地震", "气象科学",
    "社会科学", "历史", "心理卫生", "劳动经济", "海洋",
)  # fmt: skip
_MUNICIPAL_SERVICES: Final = (
    "信息中心", "机关服务中心", "宣传教育中心", "培训中心", "综合保障中心", "事务服务中心",
    "执法总队", "监测中心", "检验检测中心", "政务服务中心", "评审中心", "发展研究中心",
)  # fmt: skip
_MASS_ORGANIZATIONS: Final = (
    "天津市总工会", "共青团天津市委员会", "天津市妇女联合会", "天津市科学技术协会",
    "天津市文学艺术界联合会", "天津市归国华侨联合会", "天津市工商业联合会",
    "天津市残疾人联合会", "天津市红十字会", "天津市社会科学界联合会", "天津市作家协会",
)  # fmt: skip
_ASSOCIATION_FIELDS: Final = (
    "节能", "建筑", "医学", "护理", "教育", "计算机", "环境科学", "档案", "地理", "统计",
    "会计", "青少年发展", "慈善", "老年", "图书馆", "体育", "文物保护", "心理",
)  # fmt: skip
_ASSOCIATION_SUFFIX: Final = {"51": "协会", "52": "研究中心", "53": "发展基金会"}
_DISTRICT_HOSPITALS: Final = (
    "人民医院", "中医医院", "妇幼保健计划生育服务中心", "疾病预防控制中心", "第二人民医院",
    "中心医院", "精神卫生中心", "口腔医院",
)  # fmt: skip
_DISTRICT_VENUES: Final = (
    "图书馆", "文化馆", "体育中心", "博物馆", "少年宫", "青少年活动中心", "全民健身中心",
)  # fmt: skip
_DISTRICT_RESEARCH: Final = (
    "农业科学研究所", "教育科学研究所", "城乡规划设计院", "水利勘测设计所", "畜牧兽医研究所",
)  # fmt: skip
_DISTRICT_SERVICES: Final = (
    "综合服务中心", "信息中心", "事务服务中心", "执法大队", "培训中心", "档案室", "监测站",
    "技术推广中心",
)  # fmt: skip
_DISTRICT_ORGANIZATIONS: Final = (
    "总工会", "妇女联合会", "科学技术协会", "残疾人联合会", "红十字会", "工商业联合会",
    "文学艺术界联合会",
)  # fmt: skip
_STREET_STEMS: Final = (
    "劝业场", "小白楼", "五大道", "新兴", "南市", "南营门", "大王庄", "大直沽", "唐家口",
    "向阳楼", "春华", "二号桥", "友谊路", "挂甲寺", "越秀路", "马场", "天塔", "尖山", "陈塘庄",
    "梅江", "长虹", "鼓楼", "嘉陵道", "学府", "万兴", "王顶堤", "华苑", "体育中心", "光复道",
    "望海楼", "铁东路", "建昌道", "宁园", "王串场", "江都路", "月牙河", "西于庄", "丁字沽",
    "邵公庄", "芥园", "铃铛阁", "和苑", "西沽", "三条石", "万新", "张贵庄", "丰年村", "无瑕",
    "华明", "李七庄", "西营门", "精武", "中北", "双口", "果园新村", "佳园里", "集贤里", "瑞景",
)  # fmt: skip
_TOWN_STEMS: Final = (
    "杨柳青", "王稳庄", "辛口", "小站", "双港", "八里台", "咸水沽", "葛沽", "双街", "西堤头",
    "大良", "下朱庄", "杨村", "大口屯", "林亭口", "芦台", "东棘坨", "独流", "大邱庄",
    "唐官屯", "渔阳", "邦均", "下营", "上仓", "太平", "中塘", "杨家泊", "北辰", "宜兴埠",
    "南蔡村", "黄庄", "潘庄", "马伸桥", "别山", "七里海", "宁车沽",
)  # fmt: skip
_STREET_SERVICES: Final = (
    "党群服务中心", "综合执法大队", "社区服务中心", "便民服务中心", "退役军人服务站",
    "综合治理中心",
)  # fmt: skip
_STREET_SCHOOLS: Final = ("中心小学", "中心幼儿园", "中学", "第二小学")
_STREET_HOSPITALS: Final = ("社区卫生服务中心", "卫生服务站")
_STREET_VENUES: Final = ("综合文化站", "图书分馆", "全民健身中心")
_NEW_UNITS: Final = (
    "融媒体中心", "政务服务中心", "数据发展中心", "社会治理中心", "城市管理服务中心",
    "网格化管理中心", "营商环境服务中心",
)  # fmt: skip
_ROAD_STEMS: Final = (
    "南京", "成都", "重庆", "大沽", "卫津", "解放南", "黄河", "长江", "红旗", "复康", "友谊",
    "珠江", "中山", "建国", "新华", "津塘", "海河东", "光华", "迎宾", "育梁", "泉州", "雅安",
    "睦南", "马场", "西康", "常德", "唐山", "沙市", "佟楼", "气象台", "紫金山", "洞庭",
)  # fmt: skip
_ROAD_SUFFIXES: Final = ("路", "道", "大街")
_SURNAMES: Final = tuple(
    "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董程曹袁邓许傅沈曾彭吕苏卢"
    "蒋蔡贾丁魏薛叶阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟"
)
_GIVEN_CHARS: Final = tuple(
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超霞平刚桂英华红玉兰晶文建国志宏海燕鹏飞新宇博佳欣雪梅"
)
_MOBILE_PREFIXES: Final = ("133", "135", "137", "138", "139", "150", "151", "152", "158", "186")

_ZH_DIGITS: Final = "零一二三四五六七八九"


def _zh_below_10000(n: int) -> str:
    units = ("", "十", "百", "千")
    out, pending_zero = "", False
    for power in (3, 2, 1, 0):
        digit = n // 10**power % 10
        if digit == 0:
            pending_zero = pending_zero or bool(out)
            continue
        if pending_zero:
            out += "零"
            pending_zero = False
        out += _ZH_DIGITS[digit] + units[power]
    return out


def _zh_numeral(n: int) -> str:
    """Write 1 ≤ n < 10⁸ in Chinese numerals (十二, 一百零五, 一万零一十)."""
    if n < 10_000:
        text = _zh_below_10000(n)
    else:
        high, low = divmod(n, 10_000)
        text = _zh_below_10000(high) + "万"
        if low:
            text += ("零" if low < 1000 else "") + _zh_below_10000(low)
    return text[1:] if text.startswith("一十") else text


_NUMERALS: list[str] = ["零"]


def _numerals(indices: npt.NDArray[np.int64]) -> pl.Series:
    """Chinese numerals of many integers (a table extended once per distinct maximum)."""
    top = int(indices.max()) if indices.size else 0
    if top >= len(_NUMERALS):
        _NUMERALS.extend(_zh_numeral(i) for i in range(len(_NUMERALS), top + 1))
    return pl.Series(_NUMERALS[: top + 1], dtype=pl.String).gather(indices)


def _vocab(words: Sequence[str], indices: npt.NDArray[np.int64]) -> pl.Series:
    """Gather words by index (vectorised)."""
    return pl.Series(list(words), dtype=pl.String).gather(indices % len(words))


def _cycle_suffix(cycle_index: npt.NDArray[np.int64]) -> pl.Series:
    """Return ``""`` on the first pass through a word list, then ``（二）``, ``（三）``, etc."""
    numerals = _numerals(cycle_index + 1)
    return (
        pl.DataFrame({"c": cycle_index, "n": numerals})
        .select(
            pl.when(pl.col("c") > 0)
            .then(pl.concat_str(pl.lit("（"), pl.col("n"), pl.lit("）")))
            .otherwise(pl.lit(""))
        )
        .to_series()
    )


def _digits(values: npt.NDArray[np.int64], width: int) -> npt.NDArray[np.str_]:
    """Zero-padded decimal strings of non-negative integers, as a numpy unicode array."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    matrix = (values[:, None] // powers[None, :]) % 10 + ord("0")
    return np.ascontiguousarray(matrix.astype(np.uint32)).view(f"U{width}").ravel()


def _addresses(district_names: pl.Series, rng: np.random.Generator) -> pl.Series:
    """Street addresses in the given districts (天津市和平区南京路123号)."""
    n = district_names.len()
    return (
        _REGION_NAME
        + district_names
        + _vocab(_ROAD_STEMS, rng.integers(0, len(_ROAD_STEMS), n))
        + _vocab(_ROAD_SUFFIXES, rng.integers(0, len(_ROAD_SUFFIXES), n))
        + pl.Series(rng.integers(1, 1000, n)).cast(pl.String)
        + "号"
    )


def _contacts(n: int, rng: np.random.Generator) -> tuple[pl.Series, pl.Series]:
    """Contact names and phone numbers (half mobile, half 022 landline)."""
    given2 = rng.random(n) < 0.6
    contact_name = (
        _vocab(_SURNAMES, rng.integers(0, len(_SURNAMES), n))
        + _vocab(_GIVEN_CHARS, rng.integers(0, len(_GIVEN_CHARS), n))
        + _vocab(_GIVEN_CHARS, rng.integers(0, len(_GIVEN_CHARS), n)).zip_with(
            pl.Series(given2), pl.Series([""] * n, dtype=pl.String)
        )
    )
    mobile = rng.random(n) < 0.5
    landline = "022-2" + pl.Series(_digits(rng.integers(0, 10**7, n), 7))
    cell = _vocab(_MOBILE_PREFIXES, rng.integers(0, len(_MOBILE_PREFIXES), n)) + pl.Series(
        _digits(rng.integers(0, 10**8, n), 8)
    )
    return contact_name, cell.zip_with(pl.Series(mobile), landline)
