//! On-demand and EMR prices from AWS's Price List API (`GetProducts`), which only
//! `us-east-1`, `eu-central-1` and `ap-south-1` serve: the client is pinned to `us-east-1`
//! whatever the fleet's region. Each answer is a list of product documents (JSON in strings);
//! the price is the hourly USD dimension of the product's on-demand term.

use aws_sdk_pricing::error::DisplayErrorContext;
use aws_sdk_pricing::types::{Filter, FilterType};
use serde_json::Value;

use super::{PriceError, Result};

/// A Price List client for these AWS settings: the Price List lives in `us-east-1` only (of the
/// regions near most users), so the region is set here.
pub fn client(sdk: &aws_config::SdkConfig) -> aws_sdk_pricing::Client {
    // A bill must not wait long on a price it can also take from the shipped table.
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .read_timeout(std::time::Duration::from_secs(20))
        .operation_attempt_timeout(std::time::Duration::from_secs(20))
        .operation_timeout(std::time::Duration::from_secs(20))
        .build();
    let conf = aws_sdk_pricing::config::Builder::from(sdk)
        .region(aws_config::Region::new("us-east-1"))
        .timeout_config(timeouts)
        .build();
    aws_sdk_pricing::Client::from_conf(conf)
}

fn term(field: &str, value: &str) -> Result<Filter> {
    Filter::builder().r#type(FilterType::TermMatch).field(field).value(value).build().map_err(|e| {
        PriceError::Provider { operation: "GetProducts", detail: format!("building the filter on {field}: {e}") }
    })
}

/// The on-demand price of a Linux instance of `instance_type` in `region` (shared tenancy, no
/// pre-installed software), USD per hour.
pub async fn on_demand(client: &aws_sdk_pricing::Client, region: &str, instance_type: &str) -> Result<f64> {
    let filters = vec![
        term("instanceType", instance_type)?,
        term("regionCode", region)?,
        term("operatingSystem", "Linux")?,
        term("tenancy", "Shared")?,
        term("preInstalledSw", "NA")?,
        term("capacitystatus", "Used")?,
        term("licenseModel", "No License required")?,
    ];
    let docs = products(client, "AmazonEC2", filters).await?;
    on_demand_in(&docs).ok_or_else(|| PriceError::NotListed {
        what: "on-demand",
        instance_type: instance_type.into(),
        region: region.into(),
    })
}

/// The on-demand price among the product documents of every page: the plain `RunInstances`
/// product's, when more than one matched.
fn on_demand_in(docs: &[String]) -> Option<f64> {
    let plain: Vec<&String> =
        docs.iter().filter(|d| attribute(d, "operation").as_deref() == Some("RunInstances")).collect();
    let chosen = if plain.is_empty() { docs.iter().collect() } else { plain };
    chosen.into_iter().find_map(|d| hourly_usd(d))
}

/// The EMR charge for an instance of `instance_type` in `region`, USD per hour (on top of the
/// instance's own price).
pub async fn emr(client: &aws_sdk_pricing::Client, region: &str, instance_type: &str) -> Result<f64> {
    let filters = vec![term("instanceType", instance_type)?, term("regionCode", region)?, term("softwareType", "EMR")?];
    let docs = products(client, "ElasticMapReduce", filters).await?;
    docs.iter().find_map(|d| hourly_usd(d)).ok_or_else(|| PriceError::NotListed {
        what: "EMR",
        instance_type: instance_type.into(),
        region: region.into(),
    })
}

async fn products(client: &aws_sdk_pricing::Client, service: &str, filters: Vec<Filter>) -> Result<Vec<String>> {
    let mut pages = client
        .get_products()
        .service_code(service)
        .format_version("aws_v1")
        .set_filters(Some(filters))
        .into_paginator()
        .send();
    let mut docs = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| PriceError::Provider {
            operation: "GetProducts",
            detail: DisplayErrorContext(&e).to_string(),
        })?;
        documents_of(&page, &mut docs);
    }
    Ok(docs)
}

/// The product documents of one `GetProducts` page (the SDK's paginator follows `NextToken`).
fn documents_of(page: &aws_sdk_pricing::operation::get_products::GetProductsOutput, docs: &mut Vec<String>) {
    docs.extend(page.price_list().iter().cloned());
}

fn attribute(document: &str, name: &str) -> Option<String> {
    let v: Value = serde_json::from_str(document).ok()?;
    v.pointer(&format!("/product/attributes/{name}"))?.as_str().map(String::from)
}

/// The hourly USD price in a Price List product document's on-demand term: its dimension
/// priced in `Hrs`, above zero (a zero dimension is a reservation's or a free tier's line).
pub fn hourly_usd(document: &str) -> Option<f64> {
    let v: Value = serde_json::from_str(document).ok()?;
    let terms = v.pointer("/terms/OnDemand")?.as_object()?;
    terms
        .values()
        .filter_map(|t| t.get("priceDimensions")?.as_object())
        .flat_map(|dims| dims.values())
        .filter(|d| d.get("unit").and_then(Value::as_str) == Some("Hrs"))
        .filter_map(|d| d.pointer("/pricePerUnit/USD")?.as_str()?.parse::<f64>().ok())
        .find(|p| *p > 0.0)
}

#[cfg(test)]
mod tests {
    use aws_sdk_pricing::operation::get_products::GetProductsOutput;

    use super::{attribute, documents_of, hourly_usd, on_demand_in};

    /// A `GetProducts` product document for m6i.large in us-east-1 in the shape the Price List
    /// returns (format `aws_v1`: the product, its attributes and its terms, JSON in a string),
    /// written down from AWS's documentation: the attribute names, the on-demand offer term code
    /// `JRTCKXETXF` and a reserved term beside it are AWS's; the SKU and the other codes are
    /// invented. $0.096 an hour is m6i.large's published Linux on-demand price there.
    const M6I_LARGE_RUN_INSTANCES: &str = r#"{"product":{"productFamily":"Compute Instance","attributes":{"enhancedNetworkingSupported":"Yes","intelTurboAvailable":"Yes","memory":"8 GiB","dedicatedEbsThroughput":"Up to 10000 Mbps","vcpu":"2","capacitystatus":"Used","locationType":"AWS Region","storage":"EBS only","instanceFamily":"General purpose","operatingSystem":"Linux","intelAvx2Available":"Yes","regionCode":"us-east-1","physicalProcessor":"Intel Xeon 8375C (Ice Lake)","clockSpeed":"3.5 GHz","ecu":"NA","networkPerformance":"Up to 12500 Megabit","servicename":"Amazon Elastic Compute Cloud","instancesku":"QG5G45WKDWDDHTFV","gpuMemory":"NA","vpcnetworkingsupport":"true","instanceType":"m6i.large","tenancy":"Shared","usagetype":"BoxUsage:m6i.large","normalizationSizeFactor":"4","intelAvxAvailable":"Yes","processorFeatures":"Intel AVX; Intel AVX2; Intel AVX512; Intel Turbo","servicecode":"AmazonEC2","licenseModel":"No License required","currentGeneration":"Yes","preInstalledSw":"NA","location":"US East (N. Virginia)","processorArchitecture":"64-bit","marketoption":"OnDemand","operation":"RunInstances","availabilityzone":"NA"},"sku":"4HN2XPPNQSXFV3V8"},"serviceCode":"AmazonEC2","terms":{"OnDemand":{"4HN2XPPNQSXFV3V8.JRTCKXETXF":{"priceDimensions":{"4HN2XPPNQSXFV3V8.JRTCKXETXF.6YS6EN2CT7":{"unit":"Hrs","endRange":"Inf","description":"$0.096 per On Demand Linux m6i.large Instance Hour","appliesTo":[],"rateCode":"4HN2XPPNQSXFV3V8.JRTCKXETXF.6YS6EN2CT7","beginRange":"0","pricePerUnit":{"USD":"0.0960000000"}}},"sku":"4HN2XPPNQSXFV3V8","effectiveDate":"2024-11-01T00:00:00Z","offerTermCode":"JRTCKXETXF","termAttributes":{}}},"Reserved":{"4HN2XPPNQSXFV3V8.38NPMPTW36":{"priceDimensions":{"4HN2XPPNQSXFV3V8.38NPMPTW36.2TG2D8R56U":{"unit":"Quantity","description":"Upfront Fee","pricePerUnit":{"USD":"1209"}}},"sku":"4HN2XPPNQSXFV3V8","offerTermCode":"38NPMPTW36","termAttributes":{"LeaseContractLength":"3yr","OfferingClass":"standard","PurchaseOption":"All Upfront"}}}},"version":"20241101000000","publicationDate":"2024-11-01T00:00:00Z"}"#;

    /// The same type's product for another operation (`RunInstances:SV001`, with software),
    /// which a filter may also match: dearer, and not the plain price.
    const M6I_LARGE_WITH_SOFTWARE: &str = r#"{"product":{"productFamily":"Compute Instance","attributes":{"instanceType":"m6i.large","regionCode":"us-east-1","operatingSystem":"Linux","operation":"RunInstances:SV001","tenancy":"Shared"},"sku":"ZZZ"},"serviceCode":"AmazonEC2","terms":{"OnDemand":{"ZZZ.JRTCKXETXF":{"priceDimensions":{"ZZZ.JRTCKXETXF.6YS6EN2CT7":{"unit":"Hrs","pricePerUnit":{"USD":"0.1960000000"}}},"sku":"ZZZ","offerTermCode":"JRTCKXETXF","termAttributes":{}}}},"version":"20241101000000"}"#;

    #[test]
    fn a_paged_answer_is_read_whole_and_the_plain_product_priced() {
        // Two pages, as the paginator follows NextToken: the plain product on the second.
        let first = GetProductsOutput::builder()
            .format_version("aws_v1")
            .price_list(M6I_LARGE_WITH_SOFTWARE)
            .next_token("page-2")
            .build();
        let second = GetProductsOutput::builder().format_version("aws_v1").price_list(M6I_LARGE_RUN_INSTANCES).build();
        let mut docs = Vec::new();
        documents_of(&first, &mut docs);
        assert_eq!(on_demand_in(&docs), Some(0.196), "one page: the only product there");
        documents_of(&second, &mut docs);
        assert_eq!(docs.len(), 2);
        assert_eq!(on_demand_in(&docs), Some(0.096), "both pages: the plain RunInstances product");
        // The reserved term's upfront fee is never the hourly price.
        assert_eq!(hourly_usd(M6I_LARGE_RUN_INSTANCES), Some(0.096));
    }

    /// A product document in the shape `GetProducts` documents (format `aws_v1`), trimmed to
    /// the fields read here.
    fn document(operation: &str, dimensions: &str) -> String {
        format!(
            r#"{{
  "product": {{ "productFamily": "Compute Instance", "sku": "SKU1",
                "attributes": {{ "instanceType": "m6i.large", "regionCode": "us-east-1", "operation": "{operation}" }} }},
  "serviceCode": "AmazonEC2",
  "terms": {{ "OnDemand": {{ "SKU1.TERM1": {{ "sku": "SKU1", "priceDimensions": {dimensions} }} }} }}
}}"#
        )
    }

    #[test]
    fn the_hourly_price_is_read_from_the_on_demand_term() {
        let doc = document(
            "RunInstances",
            r#"{ "SKU1.TERM1.D1": { "unit": "Hrs", "pricePerUnit": { "USD": "0.0960000000" } } }"#,
        );
        assert_eq!(hourly_usd(&doc), Some(0.096));
        assert_eq!(attribute(&doc, "operation").as_deref(), Some("RunInstances"));
    }

    #[test]
    fn zero_and_non_hourly_dimensions_are_not_the_price() {
        let doc = document(
            "RunInstances",
            r#"{ "A": { "unit": "Quantity", "pricePerUnit": { "USD": "500" } },
                 "B": { "unit": "Hrs", "pricePerUnit": { "USD": "0.0000000000" } },
                 "C": { "unit": "Hrs", "pricePerUnit": { "USD": "0.0240000000" } } }"#,
        );
        assert_eq!(hourly_usd(&doc), Some(0.024));
        assert_eq!(hourly_usd(&document("RunInstances", "{}")), None);
        assert_eq!(hourly_usd("not json"), None);
    }
}
